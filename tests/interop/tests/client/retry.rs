//! A listener that answers RECONSUME_LATER once receives the message again with
//! reconsumeTimes 1; after maxReconsumeTimes the message is in %DLQ%<group>.
//!
//! The broker's `messageDelayLevel` is shortened here (allowed for this test only) so the
//! retries take seconds, not minutes: retry n is scheduled at level 3 + n, 2 s each.

// DefaultMQPullConsumer (deprecated in the client, still shipped) reads the DLQ.
#![allow(deprecated)]

use std::collections::HashMap;
use std::time::Duration;

use karman_interop_tests::{Cluster, ClusterOptions, Collector, PROMPT, unique};
use rocketmq_client_rust::{
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQPullConsumer, MQPushConsumer,
    PullStatus,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;

use super::{client_config, message, producer, push_consumer_builder};

/// Every level 2 s, so a retry is observably delayed but quick.
const SHORT_DELAY_LEVELS: &str = "2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s 2s";
const RETRY_DELAY: Duration = Duration::from_secs(2);
const MAX_RECONSUME_TIMES: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconsume_later_redelivers_with_reconsume_times_and_ends_in_the_dlq() {
    let cluster = Cluster::start_with(
        "retry",
        ClusterOptions {
            broker: |c| c.store.message_delay_level = SHORT_DELAY_LEVELS.to_owned(),
            ..ClusterOptions::default()
        },
    )
    .await;
    let topic = unique("RetryTopic");
    cluster.create_topic(&topic, 2).await;
    let group = unique("retry_cg");

    // "once": fails its first delivery only. "always": fails every delivery.
    let collector = Collector::new();
    let mut consumer = push_consumer_builder(&cluster, &group, "retry")
        .max_reconsume_times(MAX_RECONSUME_TIMES)
        .build();
    consumer
        .subscribe(topic.clone(), "*")
        .await
        .expect("subscribe");
    let seen = collector.clone();
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            let mut status = ConsumeConcurrentlyStatus::ConsumeSuccess;
            for msg in msgs {
                seen.record("retry", msg);
                let body = msg.body().unwrap_or_default();
                let fail = body.as_ref() == b"always"
                    || (body.as_ref() == b"once" && msg.reconsume_times() == 0);
                if fail {
                    status = ConsumeConcurrentlyStatus::ReconsumeLater;
                }
            }
            Ok(status)
        },
    );
    consumer.start().await.expect("consumer starts");

    let producer = producer(&cluster, &unique("retry_pg")).await;
    let mut ids = HashMap::new();
    for body in ["once", "always"] {
        let result = producer
            .send(message(&topic, "R", body))
            .await
            .expect("send")
            .expect("send result");
        ids.insert(body, result.msg_id.expect("msgId").to_string());
    }

    let deliveries = |all: &[karman_interop_tests::Received], body: &str| {
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
    // The DLQ is read below; a further redelivery would show up meanwhile.
    let dlq = format!("%DLQ%{group}");
    let dlq_messages = read_dlq(&cluster, &dlq).await;
    let all = collector.all();
    consumer.shutdown().await;
    assert!(done, "retries incomplete: {all:#?}");

    let once = deliveries(&all, "once");
    assert_eq!(
        once.iter().map(|r| r.reconsume_times).collect::<Vec<_>>(),
        vec![0, 1],
        "RECONSUME_LATER once: redelivered once with reconsumeTimes 1, then done: {once:#?}"
    );
    assert!(
        once.iter()
            .all(|r| r.msg_id == ids["once"] && r.topic == topic),
        "{once:#?}"
    );
    assert!(
        once[1].at - once[0].at >= RETRY_DELAY,
        "the redelivery honours the retry delay level ({RETRY_DELAY:?}): {:?}",
        once[1].at - once[0].at
    );

    let always = deliveries(&all, "always");
    assert_eq!(
        always.iter().map(|r| r.reconsume_times).collect::<Vec<_>>(),
        (0..=MAX_RECONSUME_TIMES).collect::<Vec<_>>(),
        "maxReconsumeTimes={MAX_RECONSUME_TIMES}: the original delivery plus {MAX_RECONSUME_TIMES} retries, no more: {always:#?}"
    );
    assert!(
        always
            .iter()
            .all(|r| r.msg_id == ids["always"] && r.topic == topic),
        "{always:#?}"
    );

    assert_eq!(
        dlq_messages.len(),
        1,
        "exactly the exhausted message is in {dlq}: {dlq_messages:#?}"
    );
    let dead = &dlq_messages[0];
    assert_eq!(dead.body().unwrap_or_default().as_ref(), b"always");
    assert_eq!(dead.topic().as_str(), dlq);
    assert_eq!(
        dead.property("UNIQ_KEY"),
        Some(ids["always"].as_str()),
        "the DLQ copy keeps the client msgId"
    );
    assert_eq!(dead.reconsume_times(), MAX_RECONSUME_TIMES + 1);
    assert_eq!(
        dead.property("RETRY_TOPIC").map(str::to_owned),
        Some(topic.clone()),
        "the DLQ copy names the original topic"
    );
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Everything in the group's dead-letter queue, read with a pull consumer from offset 0,
/// once the DLQ has a route and at least one message.
async fn read_dlq(cluster: &Cluster, dlq: &str) -> Vec<MessageExt> {
    cluster.wait_route(dlq).await;
    let consumer = DefaultMQPullConsumer::builder(karman_interop_tests::client_runtime("dlq"))
        .client_options(rocketmq_client_rust::ClientOptions::from(client_config(
            cluster, "dlq",
        )))
        .consumer_group(unique("dlq_reader"))
        .build()
        .expect("pull consumer");
    consumer.start().await.expect("pull consumer starts");
    let queue = MessageQueue::from_parts(dlq, cluster.broker_name(), 0);
    let deadline = tokio::time::Instant::now() + PROMPT;
    let found = loop {
        let result = consumer
            .pull(&queue, "*", 0, 32)
            .await
            .expect("pull from the DLQ");
        if *result.pull_status() == PullStatus::Found {
            break result.msg_found_list().unwrap_or_default().to_vec();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{dlq} stayed empty: {:?}",
            result.pull_status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    consumer.shutdown().await.expect("pull consumer stops");
    found
}
