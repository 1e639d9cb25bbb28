//! Query by key and by message id return the message (karman-client's `Admin`, what
//! mqadmin `queryMsgByKey` / `queryMsgById` / `queryMsgByUniqueKey` call).

use std::time::Duration;

use karman_client::{Message, MessageExt};
use tokio::time::Instant;

use crate::harness::{Cluster, PROMPT, now_ms, unique};

fn body(m: &MessageExt) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

/// Retries `query` until it returns a message with body `want` (the index is built just
/// after the append).
async fn until_found<F, Fut>(what: &str, want: &str, mut query: F) -> MessageExt
where
    F: FnMut() -> Fut,
    Fut: Future<Output = karman_client::Result<Vec<MessageExt>>>,
{
    let deadline = Instant::now() + PROMPT;
    loop {
        let outcome = query().await;
        if let Ok(found) = &outcome
            && let Some(m) = found.iter().find(|m| body(m) == want)
        {
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{what} never returned {want}: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_key_and_by_message_id_return_the_message() {
    let cluster = Cluster::start("query").await;
    let topic = unique("QueryTopic");
    cluster.create_topic(&topic, 2).await;
    let producer = cluster.producer(&unique("query_pg")).await;
    let begin = now_ms() - 1_000;

    let key = unique("order-key");
    let sent = producer
        .send(
            Message::new(&topic, "the keyed message")
                .with_tags("Q")
                .with_keys([key.as_str(), "second-key"]),
        )
        .await
        .expect("send");
    // Noise under another key and under none.
    producer
        .send(Message::new(&topic, "noise-0").with_keys(["other-key"]))
        .await
        .expect("send");
    producer
        .send(Message::new(&topic, "noise-1"))
        .await
        .expect("send");
    let end = now_ms() + 60_000;
    let admin = cluster.admin();

    let by_key = until_found("query by key", "the keyed message", || {
        admin.query_message_by_key(&topic, &key, 32, begin, end)
    })
    .await;
    assert_eq!(by_key.msg_id(), sent.msg_id);
    assert_eq!(by_key.offset_msg_id(), sent.offset_msg_id);
    assert_eq!(by_key.topic, topic);
    let by_second = until_found("query by the second key", "the keyed message", || {
        admin.query_message_by_key(&topic, "second-key", 32, begin, end)
    })
    .await;
    assert_eq!(by_second.msg_id(), sent.msg_id);
    let unknown = admin
        .query_message_by_key(&topic, "no-such-key", 32, begin, end)
        .await;
    assert!(
        unknown.as_ref().map_or(true, Vec::is_empty),
        "an unknown key finds nothing: {unknown:?}"
    );

    // By offset message id (VIEW_MESSAGE_BY_ID at the encoded commit-log offset).
    let viewed = admin
        .view_message(&sent.offset_msg_id)
        .await
        .expect("view by offsetMsgId");
    assert_eq!(body(&viewed), "the keyed message");
    assert_eq!(viewed.msg_id(), sent.msg_id);
    assert_eq!(viewed.offset_msg_id(), sent.offset_msg_id);
    assert_eq!(viewed.topic, topic);
    assert_eq!(viewed.tags(), Some("Q"));
    assert_eq!(viewed.queue_id, sent.queue.queue_id);
    assert_eq!(viewed.queue_offset, sent.queue_offset);

    // By client message id (UNIQ_KEY, through the index).
    let by_uniq = until_found("query by unique key", "the keyed message", || {
        admin.query_message_by_unique_key(&topic, &sent.msg_id)
    })
    .await;
    assert_eq!(by_uniq.offset_msg_id(), sent.offset_msg_id);
    producer.shutdown().await;
    cluster.shutdown().await;
}
