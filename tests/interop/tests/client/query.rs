//! Query by key and by message id return the message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use karman_interop_tests::{Cluster, PROMPT, unique};
use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use tokio::time::Instant;

use super::producer;

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("ms fit u64")
}

fn body(msg: &MessageExt) -> String {
    String::from_utf8_lossy(&msg.body().unwrap_or_default()).into_owned()
}

/// Queries `key` until the answer holds a message whose body is `want` (the index is
/// built just after the append).
async fn query_until(
    producer: &mut DefaultMQProducer,
    topic: &str,
    key: &str,
    window: (u64, u64),
    want: &str,
) -> MessageExt {
    let deadline = Instant::now() + PROMPT;
    loop {
        let outcome = producer
            .query_message(topic, key, 32, window.0, window.1)
            .await;
        if let Ok(found) = &outcome
            && let Some(msg) = found.message_list().iter().find(|m| body(m) == want)
        {
            return msg.clone();
        }
        assert!(
            Instant::now() < deadline,
            "query by key {key} never returned {want}: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Views message `id` until it is found with body `want`.
async fn view_until(
    producer: &mut DefaultMQProducer,
    topic: &str,
    id: &str,
    want: &str,
) -> MessageExt {
    let deadline = Instant::now() + PROMPT;
    loop {
        let outcome = producer.view_message(topic, id).await;
        if let Ok(msg) = &outcome
            && body(msg) == want
        {
            return msg.clone();
        }
        assert!(
            Instant::now() < deadline,
            "view {id} never returned {want}: {outcome:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_by_key_and_by_message_id_return_the_message() {
    let cluster = Cluster::start("query").await;
    let topic = unique("QueryTopic");
    cluster.create_topic(&topic, 2).await;
    let mut producer = producer(&cluster, &unique("query_pg")).await;
    let begin = now_ms() - 1_000;

    let key = unique("order-key");
    let target = Message::builder()
        .topic(topic.as_str())
        .tags("Q")
        .keys(vec![key.clone(), "second-key".to_owned()])
        .body_slice(b"the keyed message")
        .build_unchecked();
    let result = producer
        .send(target)
        .await
        .expect("send")
        .expect("send result");
    let msg_id = result.msg_id.clone().expect("msgId").to_string();
    let offset_msg_id = result.offset_msg_id.clone().expect("offsetMsgId");
    // Noise under another key and under no key.
    for (i, noise_key) in ["other-key", ""].iter().enumerate() {
        let mut builder = Message::builder()
            .topic(topic.as_str())
            .tags("Q")
            .body_slice(format!("noise-{i}").as_bytes());
        if !noise_key.is_empty() {
            builder = builder.key(*noise_key);
        }
        producer
            .send(builder.build_unchecked())
            .await
            .expect("send")
            .expect("send result");
    }

    let end = now_ms() + 60_000;
    let window = (begin, end);
    let by_key = query_until(&mut producer, &topic, &key, window, "the keyed message").await;
    // The client hands back plain `MessageExt`s whose `msg_id()` is the offset id; the
    // client id (what Java's getMsgId returns) is the UNIQ_KEY property.
    assert_eq!(by_key.property("UNIQ_KEY"), Some(msg_id.as_str()));
    assert_eq!(by_key.msg_id().as_str(), offset_msg_id);
    let by_second_key = query_until(
        &mut producer,
        &topic,
        "second-key",
        window,
        "the keyed message",
    )
    .await;
    assert_eq!(by_second_key.property("UNIQ_KEY"), Some(msg_id.as_str()));

    let unknown = producer
        .query_message(&topic, "no-such-key", 32, begin, end)
        .await;
    assert!(
        unknown
            .as_ref()
            .map_or(true, |r| r.message_list().is_empty()),
        "an unknown key finds nothing: {unknown:?}"
    );

    // By offset message id (VIEW_MESSAGE_BY_ID at the encoded commit-log offset).
    let viewed = producer
        .view_message(&topic, &offset_msg_id)
        .await
        .expect("view by offsetMsgId");
    assert_eq!(body(&viewed), "the keyed message");
    assert_eq!(viewed.property("UNIQ_KEY"), Some(msg_id.as_str()));
    assert_eq!(viewed.msg_id().as_str(), offset_msg_id);
    assert_eq!(viewed.topic().as_str(), topic);
    assert_eq!(
        viewed.get_tags().map(|t| t.to_string()).as_deref(),
        Some("Q")
    );

    // By client message id (UNIQ_KEY, through the index).
    let by_uniq = view_until(&mut producer, &topic, &msg_id, "the keyed message").await;
    assert_eq!(by_uniq.property("UNIQ_KEY"), Some(msg_id.as_str()));
    assert_eq!(by_uniq.msg_id().as_str(), offset_msg_id);

    producer.shutdown().await;
    cluster.shutdown().await;
}
