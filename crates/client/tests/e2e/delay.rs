//! A delay-level-2 message is not delivered before 5 s and is delivered by 7 s; a timer
//! message for now+3 s likewise (not before 3 s, by 5 s). Both use the broker's default
//! `messageDelayLevel` (level 2 = 5 s). Times count from just before the send.

use std::time::Duration;

use karman_client::{Message, Producer};
use karman_protocol::message::property;
use tokio::time::Instant;

use crate::harness::{Cluster, Collector, PROMPT, Received, now_ms, unique};

/// How long after the due time delivery still counts as on time.
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_level_2_is_delivered_after_5_s_and_by_7_s() {
    let cluster = Cluster::start("delay").await;
    let topic = unique("DelayTopic");
    cluster.create_topic(&topic, 2).await;
    let collector = Collector::new();
    let consumer = cluster
        .recording_consumer(&unique("delay_cg"), "c", &topic, "*", &collector, |b| b)
        .await;
    let producer = cluster.producer(&unique("delay_pg")).await;
    send_and_wait_ready(&producer, &topic, &collector).await;

    let sent_at = Instant::now();
    let result = producer
        .send(
            Message::new(&topic, "delayed-level-2")
                .with_tags("D")
                .with_delay_level(2),
        )
        .await
        .expect("send");
    let delivered = assert_delivered_in_window(
        &collector,
        "delayed-level-2",
        &result.msg_id,
        sent_at,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        delivered.queue_id, result.queue.queue_id,
        "the response names the target queue"
    );
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_message_for_now_plus_3_s_is_delivered_after_3_s_and_by_5_s() {
    let cluster = Cluster::start("timer").await;
    let topic = unique("TimerTopic");
    cluster.create_topic(&topic, 2).await;
    let collector = Collector::new();
    let consumer = cluster
        .recording_consumer(&unique("timer_cg"), "c", &topic, "*", &collector, |b| b)
        .await;
    let producer = cluster.producer(&unique("timer_pg")).await;
    send_and_wait_ready(&producer, &topic, &collector).await;

    // The three ways to ask for "in 3 s": an absolute time (TIMER_DELIVER_MS), relative
    // seconds (TIMER_DELAY_SEC) and relative milliseconds (TIMER_DELAY_MS).
    let mut sent = Vec::new();
    for trigger in ["deliver-ms", "delay-sec", "delay-ms"] {
        let body = format!("timer-3s-{trigger}");
        // The monotonic clock first: the wall-clock due time is then ≥ 3 s after it.
        let sent_at = Instant::now();
        let message = Message::new(&topic, body.clone()).with_tags("T");
        let message = match trigger {
            "deliver-ms" => message.with_deliver_timestamp_ms(now_ms() + 3_000),
            "delay-sec" => message.with_property(property::TIMER_DELAY_SEC, "3"),
            _ => message.with_delay_ms(3_000),
        };
        let result = producer.send(message).await.expect("send");
        sent.push((body, result, sent_at));
    }
    for (body, result, sent_at) in sent {
        let delivered = assert_delivered_in_window(
            &collector,
            &body,
            &result.msg_id,
            sent_at,
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(
            delivered.queue_id, result.queue.queue_id,
            "the response names the target queue"
        );
    }
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

async fn send_and_wait_ready(producer: &Producer, topic: &str, collector: &Collector) {
    producer
        .send(Message::new(topic, "ready").with_tags("Ready"))
        .await
        .expect("send");
    assert!(
        collector.wait_count(1, PROMPT).await,
        "the consumer never received the undelayed probe"
    );
}

async fn assert_delivered_in_window(
    collector: &Collector,
    body: &str,
    msg_id: &str,
    sent_at: Instant,
    due_after: Duration,
) -> Received {
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
    assert_eq!(delivered[0].msg_id, msg_id, "the msgId survives the delay");
    assert_eq!(delivered[0].reconsume_times, 0);
    eprintln!("[e2e] {body} delivered {after:?} after the send (window {due_after:?}..={by:?})");
    delivered[0].clone()
}
