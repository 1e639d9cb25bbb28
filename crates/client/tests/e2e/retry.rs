//! A listener that answers RECONSUME_LATER once receives the message again with
//! reconsumeTimes 1; after maxReconsumeTimes the message is in %DLQ%<group>.
//!
//! The broker's `messageDelayLevel` is shortened here so retries take seconds, not
//! minutes: retry n is scheduled at level 3 + n, 2 s each.

use std::collections::HashMap;
use std::time::Duration;

use karman_client::consumer::{ConsumeConcurrentlyStatus, LitePullConsumer, concurrently};
use karman_client::{Message, MessageExt, MessageQueue};
use tokio::time::Instant;

use crate::harness::{Cluster, Collector, PROMPT, Received, unique};

const SHORT_DELAY_LEVELS: &str = "2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s";
const RETRY_DELAY: Duration = Duration::from_secs(2);
const MAX_RECONSUME_TIMES: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconsume_later_redelivers_with_reconsume_times_and_ends_in_the_dlq() {
    let cluster = Cluster::start_with("retry", |c| {
        c.store.message_delay_level = SHORT_DELAY_LEVELS.to_owned();
    })
    .await;
    let topic = unique("RetryTopic");
    cluster.create_topic(&topic, 2).await;
    let group = unique("retry_cg");

    // "once" fails its first delivery only; "always" fails every delivery.
    let collector = Collector::new();
    let seen = collector.clone();
    let consumer = cluster
        .push_consumer(&group, "retry")
        .subscribe(&topic, "*")
        .max_reconsume_times(MAX_RECONSUME_TIMES)
        .listener_concurrently(concurrently(move |messages| {
            let seen = seen.clone();
            async move {
                let mut status = ConsumeConcurrentlyStatus::ConsumeSuccess;
                for m in &messages {
                    seen.record("retry", m);
                    let body = m.body.as_ref();
                    if body == b"always" || (body == b"once" && m.reconsume_times == 0) {
                        status = ConsumeConcurrentlyStatus::ReconsumeLater;
                    }
                }
                status
            }
        }))
        .start()
        .await
        .expect("consumer starts");

    let producer = cluster.producer(&unique("retry_pg")).await;
    let mut ids = HashMap::new();
    for body in ["once", "always"] {
        let result = producer
            .send(Message::new(&topic, body).with_tags("R"))
            .await
            .expect("send");
        ids.insert(body, result.msg_id);
    }

    let deliveries = |all: &[Received], body: &str| {
        all.iter()
            .filter(|r| r.body == body)
            .cloned()
            .collect::<Vec<_>>()
    };
    let expected_always = usize::try_from(MAX_RECONSUME_TIMES).unwrap() + 1;
    let done = collector
        .wait_until(PROMPT + RETRY_DELAY * 4, |all| {
            deliveries(all, "once").len() >= 2 && deliveries(all, "always").len() >= expected_always
        })
        .await;
    let dlq = format!("%DLQ%{group}");
    let dead = read_dlq(&cluster, &dlq).await;
    let all = collector.all();
    consumer.shutdown().await;
    assert!(done, "retries incomplete: {all:#?}");

    let once = deliveries(&all, "once");
    assert_eq!(
        once.iter().map(|r| r.reconsume_times).collect::<Vec<_>>(),
        vec![0, 1],
        "RECONSUME_LATER once: redelivered once with reconsumeTimes 1: {once:#?}"
    );
    assert!(
        once.iter()
            .all(|r| r.msg_id == ids["once"] && r.topic == topic),
        "the retry keeps the msgId and gets the original topic back: {once:#?}"
    );
    assert!(
        once[1].at - once[0].at >= RETRY_DELAY,
        "the redelivery honours the retry delay ({RETRY_DELAY:?}): {:?}",
        once[1].at - once[0].at
    );
    let always = deliveries(&all, "always");
    assert_eq!(
        always.iter().map(|r| r.reconsume_times).collect::<Vec<_>>(),
        (0..=MAX_RECONSUME_TIMES).collect::<Vec<_>>(),
        "maxReconsumeTimes={MAX_RECONSUME_TIMES}: the delivery plus {MAX_RECONSUME_TIMES} retries: {always:#?}"
    );
    assert!(
        always
            .iter()
            .all(|r| r.msg_id == ids["always"] && r.topic == topic),
        "{always:#?}"
    );

    assert_eq!(
        dead.len(),
        1,
        "exactly the exhausted message is in {dlq}: {dead:#?}"
    );
    let dead = &dead[0];
    assert_eq!(dead.body.as_ref(), b"always");
    assert_eq!(dead.topic, dlq);
    assert_eq!(dead.msg_id(), ids["always"], "the DLQ copy keeps the msgId");
    assert_eq!(dead.reconsume_times, MAX_RECONSUME_TIMES + 1);
    assert_eq!(
        dead.properties.get("RETRY_TOPIC"),
        Some(topic.as_str()),
        "the DLQ copy names the original topic"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Everything in the group's dead-letter queue, read from offset 0 with an assigned lite
/// pull consumer once the DLQ has a route and a message.
async fn read_dlq(cluster: &Cluster, dlq: &str) -> Vec<MessageExt> {
    cluster.wait_route(dlq).await;
    let reader = LitePullConsumer::builder()
        .client_config(cluster.client_config("dlq"))
        .group(unique("dlq_reader"))
        .auto_commit(false)
        .build()
        .await
        .expect("lite pull consumer");
    let queue = MessageQueue::new(dlq, cluster.broker_name(), 0);
    reader
        .assign(vec![queue.clone()])
        .await
        .expect("assign the DLQ");
    reader.seek(&queue, 0).await.expect("seek to 0");
    let deadline = Instant::now() + PROMPT;
    let mut found = Vec::new();
    while found.is_empty() {
        assert!(Instant::now() < deadline, "{dlq} stayed empty");
        found = reader.poll(Duration::from_millis(500)).await;
    }
    // A second message would be a wrongly dead-lettered one.
    found.extend(reader.poll(Duration::from_millis(500)).await);
    reader.shutdown().await;
    found
}

/// With batches, a listener that answers CONSUME_SUCCESS with `ack_index = i` acks the
/// first i + 1 messages; the rest go back and are redelivered with reconsumeTimes 1
/// (spec semantics.md §7.5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_index_retries_only_the_tail_of_a_batch() {
    use karman_client::consumer::{ConsumeConcurrentlyContext, MessageListenerConcurrently};

    struct AckTwo {
        seen: Collector,
    }

    #[async_trait::async_trait]
    impl MessageListenerConcurrently for AckTwo {
        async fn consume_message(
            &self,
            messages: &[MessageExt],
            context: &mut ConsumeConcurrentlyContext,
        ) -> ConsumeConcurrentlyStatus {
            for m in messages {
                self.seen.record("batch", m);
            }
            if messages.len() == 4 && messages.iter().all(|m| m.reconsume_times == 0) {
                // The first two of a first delivery succeed, the last two are retried.
                context.ack_index = 1;
            }
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }
    }

    let cluster = Cluster::start_with("ackindex", |c| {
        c.store.message_delay_level = SHORT_DELAY_LEVELS.to_owned();
    })
    .await;
    let topic = unique("AckTopic");
    cluster.create_topic(&topic, 1).await;
    let producer = cluster.producer(&unique("ack_pg")).await;
    // Stored before the consumer starts, so its first pull returns all four at once.
    for i in 0..4 {
        producer
            .send(Message::new(&topic, format!("m{i}")))
            .await
            .expect("send");
    }
    let collector = Collector::new();
    let consumer = cluster
        .push_consumer(&unique("ack_cg"), "ack")
        .subscribe(&topic, "*")
        .consume_message_batch_max_size(4)
        .listener_concurrently(AckTwo {
            seen: collector.clone(),
        })
        .start()
        .await
        .expect("consumer starts");
    let done = collector.wait_count(6, PROMPT + RETRY_DELAY * 2).await;
    let _ = collector
        .wait_until(Duration::from_secs(1), |all| all.len() > 6)
        .await;
    let all = collector.all();
    consumer.shutdown().await;
    assert!(done, "{all:#?}");
    let deliveries: Vec<(&str, i32)> = all
        .iter()
        .map(|r| (r.body.as_str(), r.reconsume_times))
        .collect();
    assert_eq!(
        deliveries,
        [
            ("m0", 0),
            ("m1", 0),
            ("m2", 0),
            ("m3", 0),
            ("m2", 1),
            ("m3", 1)
        ],
        "one batch of four, then the two after ack_index again"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}
