//! A pull consumer reads from explicit offsets; committed offsets survive a consumer
//! restart and a broker restart.

// DefaultMQPullConsumer: the classic pull API, deprecated in the client but shipped.
#![allow(deprecated)]

use std::collections::HashMap;
use std::time::Duration;

use karman_interop_tests::{Cluster, Collector, PROMPT, error_chain, unique};
use rocketmq_client_rust::{
    ClientOptions, DefaultLitePullConsumer, DefaultMQProducer, DefaultMQPullConsumer, PullStatus,
};
use rocketmq_model::common::message::message_queue::MessageQueue;
use tokio::time::Instant;

use super::{client_config, message, producer, recording_consumer};

const MESSAGES: i64 = 10;

async fn fill_queue(cluster: &Cluster, producer: &DefaultMQProducer, topic: &str) -> MessageQueue {
    let queue = MessageQueue::from_parts(topic, cluster.broker_name(), 0);
    for i in 0..MESSAGES {
        let result = producer
            .send_to_queue(message(topic, "P", &format!("msg-{i}")), queue.clone())
            .await
            .expect("send")
            .expect("send result");
        assert_eq!(
            result.queue_offset,
            u64::try_from(i).unwrap(),
            "consecutive queue offsets"
        );
    }
    queue
}

fn bodies_of(result: &rocketmq_client_rust::PullResult) -> Vec<String> {
    result
        .msg_found_list()
        .unwrap_or_default()
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned())
        .collect()
}

fn expected(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("msg-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_consumer_reads_from_explicit_offsets() {
    let cluster = Cluster::start("pull").await;
    let topic = unique("PullTopic");
    cluster.create_topic(&topic, 2).await;
    let producer = producer(&cluster, &unique("pull_pg")).await;
    let queue = fill_queue(&cluster, &producer, &topic).await;

    let consumer = DefaultMQPullConsumer::builder(karman_interop_tests::client_runtime("pull"))
        .client_options(ClientOptions::from(client_config(&cluster, "pull")))
        .consumer_group(unique("pull_cg"))
        .build()
        .expect("pull consumer");
    consumer.start().await.expect("pull consumer starts");
    // The queues as the client learns them from the route.
    let mut queues = consumer
        .fetch_subscribe_message_queues(&topic)
        .await
        .unwrap_or_else(|e| panic!("queues of {topic}: {}", error_chain(&e)));
    queues.sort_by_key(MessageQueue::queue_id);
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0], queue);
    let other_queue = queues[1].clone();
    let min = consumer.min_offset(&queue).await;
    assert_eq!(min.map_err(|e| error_chain(&e)), Ok(0), "min offset");
    let max = consumer.max_offset(&queue).await;
    assert_eq!(max.map_err(|e| error_chain(&e)), Ok(MESSAGES), "max offset");

    let middle = consumer.pull(&queue, "*", 3, 4).await.expect("pull at 3");
    assert_eq!(
        *middle.pull_status(),
        PullStatus::Found,
        "{:?}",
        middle.pull_status()
    );
    assert_eq!(bodies_of(&middle), expected(3..7));
    assert_eq!(middle.next_begin_offset(), 7);
    let offsets: Vec<i64> = middle
        .msg_found_list()
        .unwrap_or_default()
        .iter()
        .map(|m| m.queue_offset())
        .collect();
    assert_eq!(offsets, (3..7).collect::<Vec<_>>());

    let all = consumer.pull(&queue, "*", 0, 32).await.expect("pull at 0");
    assert_eq!(
        *all.pull_status(),
        PullStatus::Found,
        "{:?}",
        all.pull_status()
    );
    assert_eq!(bodies_of(&all), expected(0..MESSAGES));
    assert_eq!(all.next_begin_offset(), u64::try_from(MESSAGES).unwrap());

    let last = consumer
        .pull(&queue, "*", MESSAGES - 1, 32)
        .await
        .expect("pull at the last");
    assert_eq!(bodies_of(&last), expected(MESSAGES - 1..MESSAGES));

    let at_end = consumer
        .pull(&queue, "*", MESSAGES, 32)
        .await
        .expect("pull at max");
    assert_eq!(
        *at_end.pull_status(),
        PullStatus::NoNewMsg,
        "{:?}",
        at_end.pull_status()
    );
    assert_eq!(at_end.next_begin_offset(), u64::try_from(MESSAGES).unwrap());

    let beyond = consumer
        .pull(&queue, "*", MESSAGES + 50, 32)
        .await
        .expect("pull past max");
    assert_eq!(
        *beyond.pull_status(),
        PullStatus::OffsetIllegal,
        "{:?}",
        beyond.pull_status()
    );
    assert_eq!(beyond.next_begin_offset(), u64::try_from(MESSAGES).unwrap());

    let empty = consumer
        .pull(&other_queue, "*", 0, 32)
        .await
        .expect("pull an empty queue");
    assert_eq!(
        *empty.pull_status(),
        PullStatus::NoNewMsg,
        "{:?}",
        empty.pull_status()
    );

    consumer.shutdown().await.expect("pull consumer stops");
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A lite pull consumer in assign mode with manual commits.
async fn assign_consumer(
    cluster: &Cluster,
    group: &str,
    queue: &MessageQueue,
) -> DefaultLitePullConsumer {
    let consumer = DefaultLitePullConsumer::builder(karman_interop_tests::client_runtime(group))
        .client_options(ClientOptions::from(client_config(cluster, "lite")))
        .consumer_group(group.to_owned())
        .pull_batch_size(4)
        .poll_timeout_millis(1_000)
        .auto_commit(false)
        .build()
        .expect("lite pull consumer");
    consumer
        .set_sub_expression_for_assign(queue.topic().as_str(), "*")
        .await
        .expect("assign expression");
    consumer.start().await.expect("lite pull consumer starts");
    let queues = consumer
        .fetch_message_queues(queue.topic().as_str())
        .await
        .unwrap_or_else(|e| panic!("queues: {}", error_chain(&e)));
    assert_eq!(queues, vec![queue.clone()], "the route has the one queue");
    consumer
        .assign(vec![queue.clone()])
        .await
        .unwrap_or_else(|e| panic!("assign: {}", error_chain(&e)));
    consumer
}

/// Polls until at least one message arrives; returns the bodies of that first poll.
async fn first_poll(consumer: &DefaultLitePullConsumer) -> Vec<String> {
    let deadline = Instant::now() + PROMPT;
    loop {
        let messages = consumer.poll_with_timeout(1_000).await;
        if !messages.is_empty() {
            return messages
                .iter()
                .map(|m| String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "nothing polled within {PROMPT:?}"
        );
    }
}

async fn commit(consumer: &DefaultLitePullConsumer, queue: &MessageQueue, offset: i64) {
    consumer
        .commit_with_map(HashMap::from([(queue.clone(), offset)]), true)
        .await;
    // The commit is an UPDATE_CONSUMER_OFFSET to the broker; read it back from there.
    let deadline = Instant::now() + PROMPT;
    loop {
        let committed = consumer.committed(queue).await.expect("committed offset");
        if committed == offset {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed offset stayed {committed}, want {offset}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_consumer_restart_and_a_broker_restart() {
    let mut cluster = Cluster::start("offsets").await;
    let topic = unique("OffsetTopic");
    cluster.create_topic(&topic, 1).await;
    let mut producer = producer(&cluster, &unique("offsets_pg")).await;
    let queue = fill_queue(&cluster, &producer, &topic).await;
    producer.shutdown().await;
    let group = unique("offsets_cg");

    // Read from an explicit offset, then commit one.
    let consumer = assign_consumer(&cluster, &group, &queue).await;
    consumer
        .seek(&queue, 2)
        .await
        .unwrap_or_else(|e| panic!("seek: {}", error_chain(&e)));
    let polled = first_poll(&consumer).await;
    assert_eq!(
        polled.first().map(String::as_str),
        Some("msg-2"),
        "{polled:?}"
    );
    assert!(
        polled
            .iter()
            .zip(expected(2..MESSAGES))
            .all(|(a, b)| *a == b),
        "{polled:?}"
    );
    commit(&consumer, &queue, 6).await;
    consumer.shutdown().await;

    // Consumer restart: the new instance starts where the group committed.
    let consumer = assign_consumer(&cluster, &group, &queue).await;
    assert_eq!(consumer.committed(&queue).await.expect("committed"), 6);
    let polled = first_poll(&consumer).await;
    assert_eq!(
        polled.first().map(String::as_str),
        Some("msg-6"),
        "{polled:?}"
    );
    commit(&consumer, &queue, 8).await;
    consumer.shutdown().await;

    // Broker restart (clean shutdown, same data dir, new port).
    cluster.restart_broker(&topic).await;
    let consumer = assign_consumer(&cluster, &group, &queue).await;
    assert_eq!(
        consumer
            .committed(&queue)
            .await
            .expect("committed after broker restart"),
        8
    );
    let polled = first_poll(&consumer).await;
    assert_eq!(
        polled,
        expected(8..MESSAGES),
        "resumes at the committed offset"
    );
    consumer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_push_consumer_resumes_after_what_its_group_consumed() {
    let mut cluster = Cluster::start("resume").await;
    let topic = unique("ResumeTopic");
    cluster.create_topic(&topic, 2).await;
    let group = unique("resume_cg");
    let mut producer = producer(&cluster, &unique("resume_pg")).await;
    // First life: consume the first ten; shutdown persists the group's offsets.
    send_ten(&producer, &topic, "first").await;
    let first = Collector::new();
    let mut consumer =
        recording_consumer(&cluster, &group, "first", &topic, "*", &first, |b| b).await;
    assert!(first.wait_count(10, PROMPT).await, "{:?}", first.bodies());
    consumer.shutdown().await;

    // Second life after a consumer restart: only what was sent since.
    send_ten(&producer, &topic, "second").await;
    let second = Collector::new();
    let mut consumer =
        recording_consumer(&cluster, &group, "second", &topic, "*", &second, |b| b).await;
    assert!(second.wait_count(10, PROMPT).await, "{:?}", second.bodies());
    let _ = second
        .wait_until(Duration::from_secs(2), |all| all.len() > 10)
        .await;
    consumer.shutdown().await;
    let mut got = second.bodies();
    got.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("second-{i}")).collect();
    want.sort();
    assert_eq!(
        got, want,
        "a restarted consumer resumes at the committed offsets"
    );

    // Third life after a broker restart.
    cluster.restart_broker(&topic).await;
    let mut producer2 = super::producer(&cluster, &unique("resume_pg2")).await;
    send_ten(&producer2, &topic, "third").await;
    let third = Collector::new();
    let mut consumer =
        recording_consumer(&cluster, &group, "third", &topic, "*", &third, |b| b).await;
    assert!(third.wait_count(10, PROMPT).await, "{:?}", third.bodies());
    let _ = third
        .wait_until(Duration::from_secs(2), |all| all.len() > 10)
        .await;
    consumer.shutdown().await;
    let mut got = third.bodies();
    got.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("third-{i}")).collect();
    want.sort();
    assert_eq!(
        got, want,
        "offsets committed before a broker restart still hold"
    );
    producer.shutdown().await;
    producer2.shutdown().await;
    cluster.shutdown().await;
}

async fn send_ten(producer: &DefaultMQProducer, topic: &str, prefix: &str) {
    for i in 0..10 {
        producer
            .send(message(topic, "R", &format!("{prefix}-{i}")))
            .await
            .expect("send")
            .expect("send result");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribing_lite_pull_consumer_polls_every_message_once() {
    let cluster = Cluster::start("litesub").await;
    let topic = unique("LiteSubTopic");
    cluster.create_topic(&topic, 4).await;
    let mut producer = producer(&cluster, &unique("litesub_pg")).await;
    send_ten(&producer, &topic, "lite").await;

    let group = unique("litesub_cg");
    let consumer = DefaultLitePullConsumer::builder(karman_interop_tests::client_runtime(&group))
        .client_options(ClientOptions::from(client_config(&cluster, "litesub")))
        .consumer_group(group.clone())
        .pull_batch_size(4)
        .poll_timeout_millis(1_000)
        // The client's shutdown waits for its held pulls to come back; the default 20 s
        // hold would make this test wait that long for nothing.
        .broker_suspend_max_time_millis(2_000)
        .auto_commit(true)
        .build()
        .expect("lite pull consumer");
    consumer
        .subscribe_with_expression(&topic, "R")
        .await
        .expect("subscribe");
    consumer.start().await.expect("lite pull consumer starts");
    let mut got = Vec::new();
    let deadline = Instant::now() + PROMPT;
    while got.len() < 10 && Instant::now() < deadline {
        got.extend(
            consumer
                .poll_with_timeout(1_000)
                .await
                .iter()
                .map(|m| String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned()),
        );
    }
    // Anything more would be a duplicate.
    got.extend(
        consumer
            .poll_with_timeout(1_000)
            .await
            .iter()
            .map(|m| String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned()),
    );
    consumer.shutdown().await;
    got.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("lite-{i}")).collect();
    want.sort();
    assert_eq!(got, want, "every message once");
    producer.shutdown().await;
    cluster.shutdown().await;
}
