//! A delay-level-2 message is not delivered before 5 s and is delivered by 7 s; a timer
//! message for now+3 s likewise (not before 3 s, by 5 s). Both use the broker's default
//! `messageDelayLevel` (level 2 = 5 s). Times are measured from just before the send.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use karman_interop_tests::{Cluster, Collector, unique};
use rocketmq_model::common::message::message_single::Message;
use tokio::time::Instant;

use super::{producer, topic_with_recorder};

/// How long after the due time delivery may still count as on time.
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_level_2_is_delivered_after_5_s_and_by_7_s() {
    let cluster = Cluster::start("delay").await;
    let (topic, collector, mut consumer) =
        topic_with_recorder(&cluster, "DelayTopic", 2, "delay_cg").await;
    let producer = producer(&cluster, &unique("delay_pg")).await;
    // The consumer is ready when an undelayed message gets through.
    send_and_wait_ready(&producer, &topic, &collector).await;

    let due_after = Duration::from_secs(5);
    let message = Message::builder()
        .topic(topic.as_str())
        .tags("D")
        .body_slice(b"delayed-level-2")
        .delay_level(2)
        .build_unchecked();
    let sent_at = Instant::now();
    let result = producer
        .send(message)
        .await
        .expect("send")
        .expect("send result");
    let msg_id = result.msg_id.clone().expect("msgId").to_string();
    let queue_id = result.message_queue.as_ref().expect("queue").queue_id();

    let delivered =
        assert_delivered_in_window(&collector, "delayed-level-2", &msg_id, sent_at, due_after)
            .await;
    assert_eq!(
        delivered.queue_id, queue_id,
        "the response names the target queue"
    );
    consumer.shutdown().await;
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_message_for_now_plus_3_s_is_delivered_after_3_s_and_by_5_s() {
    let cluster = Cluster::start("timer").await;
    let (topic, collector, mut consumer) =
        topic_with_recorder(&cluster, "TimerTopic", 2, "timer_cg").await;
    let producer = producer(&cluster, &unique("timer_pg")).await;
    send_and_wait_ready(&producer, &topic, &collector).await;

    // The three ways to ask for "in 3 s": an absolute time (TIMER_DELIVER_MS), and relative
    // seconds or milliseconds (TIMER_DELAY_SEC, TIMER_DELAY_MS), which count from when the
    // broker receives the send.
    let due_after = Duration::from_secs(3);
    let mut sent = Vec::new();
    for trigger in ["deliver-ms", "delay-sec", "delay-ms"] {
        let body = format!("timer-3s-{trigger}");
        // Read the monotonic clock first: the wall-clock due time is then at least 3 s
        // after `sent_at`.
        let sent_at = Instant::now();
        let now_ms = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_millis(),
        )
        .expect("ms fit u64");
        let builder = Message::builder()
            .topic(topic.as_str())
            .tags("T")
            .body_slice(body.as_bytes());
        let builder = match trigger {
            "deliver-ms" => builder.deliver_time_ms(now_ms + 3_000),
            "delay-sec" => builder.delay_secs(3),
            _ => builder.delay_millis(3_000),
        };
        let result = producer
            .send(builder.build_unchecked())
            .await
            .expect("send")
            .expect("send result");
        let msg_id = result.msg_id.clone().expect("msgId").to_string();
        let queue_id = result.message_queue.as_ref().expect("queue").queue_id();
        sent.push((body, msg_id, queue_id, sent_at));
    }
    for (body, msg_id, queue_id, sent_at) in sent {
        let delivered =
            assert_delivered_in_window(&collector, &body, &msg_id, sent_at, due_after).await;
        assert_eq!(
            delivered.queue_id, queue_id,
            "the response names the target queue"
        );
    }
    consumer.shutdown().await;
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}

async fn send_and_wait_ready(
    producer: &rocketmq_client_rust::DefaultMQProducer,
    topic: &str,
    collector: &Collector,
) {
    producer
        .send(super::message(topic, "Ready", "ready"))
        .await
        .expect("send")
        .expect("send result");
    assert!(
        collector.wait_count(1, karman_interop_tests::PROMPT).await,
        "the consumer never received the undelayed probe"
    );
}

async fn assert_delivered_in_window(
    collector: &Collector,
    body: &str,
    msg_id: &str,
    sent_at: Instant,
    due_after: Duration,
) -> karman_interop_tests::Received {
    let by = due_after + SLACK;
    let arrived = collector
        .wait_until(by + Duration::from_secs(10), |all| {
            all.iter().any(|r| r.body == body)
        })
        .await;
    let all = collector.all();
    assert!(arrived, "{body} never delivered: {all:#?}");
    let delivered: Vec<_> = all.iter().filter(|r| r.body == body).collect();
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    let after = delivered[0].at - sent_at;
    assert!(
        after >= due_after,
        "{body} delivered after {after:?}, before {due_after:?}"
    );
    assert!(
        after <= by,
        "{body} delivered after {after:?}, later than {by:?}"
    );
    assert_eq!(
        delivered[0].msg_id, msg_id,
        "the client msgId survives the delay"
    );
    assert_eq!(delivered[0].reconsume_times, 0);
    eprintln!(
        "[interop] {body} delivered {after:?} after the send (window {due_after:?}..={by:?})"
    );
    delivered[0].clone()
}
