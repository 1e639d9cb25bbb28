//! Clustering: two consumers of one group split the queues and together receive every
//! message once. Broadcasting: each consumer receives all.

use std::collections::{BTreeMap, BTreeSet};

use karman_interop_tests::{Cluster, Collector, PROMPT, bodies, counts, unique};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use tokio::time::Instant;

use super::{message, producer, recording_consumer};

const QUEUES: i32 = 4;
const MESSAGES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_consumers_split_the_queues_and_receive_each_message_once() {
    let cluster = Cluster::start("clustering").await;
    let topic = unique("ClusterTopic");
    cluster.create_topic(&topic, QUEUES).await;
    let group = unique("clustering_cg");
    let collector = Collector::new();
    let mut c1 = recording_consumer(&cluster, &group, "c1", &topic, "*", &collector, |b| b).await;
    let mut c2 = recording_consumer(&cluster, &group, "c2", &topic, "*", &collector, |b| b).await;

    // Send only once the group has settled: each member owns half of the queues. Queues
    // are observed through deliveries of probe messages, one per queue, until both
    // members have received at least one and every queue has exactly one owner.
    let producer = producer(&cluster, &unique("clustering_pg")).await;
    let owners = settle_ownership(&cluster, &producer, &topic, &collector).await;
    let probes = collector.all().len();

    let expected = bodies("clustered", MESSAGES);
    for (i, body) in expected.iter().enumerate() {
        let queue = i32::try_from(i).unwrap() % QUEUES;
        send_to(&cluster, &producer, &topic, queue, body).await;
    }
    let done = collector
        .wait_until(PROMPT, |all| {
            let got: BTreeSet<&str> = all[probes..].iter().map(|r| r.body.as_str()).collect();
            expected.iter().all(|b| got.contains(b.as_str()))
        })
        .await;
    // Give a duplicate a moment to show up before judging "once".
    let _ = collector
        .wait_until(std::time::Duration::from_millis(500), |all| {
            all.len() > probes + MESSAGES
        })
        .await;
    let received: Vec<_> = collector.all().split_off(probes);
    c1.shutdown().await;
    c2.shutdown().await;
    assert!(
        done,
        "clustered delivery incomplete: {:?}",
        counts(received.iter().map(|r| r.body.clone()))
    );
    assert_eq!(
        counts(received.iter().map(|r| r.body.clone())),
        counts(expected.iter().cloned()),
        "every message exactly once across the group"
    );
    let mut by_consumer: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for r in &received {
        by_consumer
            .entry(r.consumer.as_str())
            .or_default()
            .insert(r.queue_id);
        assert_eq!(
            owners[&r.queue_id], r.consumer,
            "queue {} delivered to a non-owner: {r:?}",
            r.queue_id
        );
    }
    assert_eq!(
        by_consumer.len(),
        2,
        "both members consumed: {by_consumer:?}"
    );
    assert_eq!(by_consumer["c1"].len(), 2, "{by_consumer:?}");
    assert_eq!(by_consumer["c2"].len(), 2, "{by_consumer:?}");
    assert!(
        by_consumer["c1"].is_disjoint(&by_consumer["c2"]),
        "{by_consumer:?}"
    );
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Sends probes to every queue until each queue has been consumed by exactly one member
/// for its latest probe round and both members own queues; returns queue → owner.
async fn settle_ownership(
    cluster: &Cluster,
    producer: &rocketmq_client_rust::DefaultMQProducer,
    topic: &str,
    collector: &Collector,
) -> BTreeMap<i32, String> {
    let deadline = Instant::now() + PROMPT * 2;
    let mut round = 0;
    loop {
        round += 1;
        let before = collector.all().len();
        for queue in 0..QUEUES {
            send_to(
                cluster,
                producer,
                topic,
                queue,
                &format!("probe-{round}-{queue}"),
            )
            .await;
        }
        let arrived = collector
            .wait_until(PROMPT, |all| {
                let prefix = format!("probe-{round}-");
                all[before..]
                    .iter()
                    .filter(|r| r.body.starts_with(&prefix))
                    .count()
                    >= usize::try_from(QUEUES).unwrap()
            })
            .await;
        assert!(
            arrived,
            "probe round {round} not delivered: {:?}",
            collector.bodies()
        );
        let owners: BTreeMap<i32, String> = collector.all()[before..]
            .iter()
            .map(|r| (r.queue_id, r.consumer.clone()))
            .collect();
        let members: BTreeSet<&String> = owners.values().collect();
        if members.len() == 2 && owners.len() == usize::try_from(QUEUES).unwrap() {
            return owners;
        }
        assert!(
            Instant::now() < deadline,
            "the group never split the queues between both members: {owners:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn send_to(
    cluster: &Cluster,
    producer: &rocketmq_client_rust::DefaultMQProducer,
    topic: &str,
    queue_id: i32,
    body: &str,
) {
    let mq = rocketmq_model::common::message::message_queue::MessageQueue::from_parts(
        topic,
        cluster.broker_name(),
        queue_id,
    );
    let result = producer
        .send_to_queue(message(topic, "T", body), mq)
        .await
        .expect("send to queue")
        .expect("send result");
    assert_eq!(
        result.message_queue.as_ref().map(|q| q.queue_id()),
        Some(queue_id),
        "explicit queue honoured: {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_consumers_each_receive_every_message() {
    let cluster = Cluster::start("broadcast").await;
    let topic = unique("BroadcastTopic");
    cluster.create_topic(&topic, QUEUES).await;
    let group = unique("broadcast_cg");
    let collector = Collector::new();
    // Broadcasting offsets live in the client, so the broker's "young queue starts at 0"
    // answer does not apply: with LAST_OFFSET a member starts at the queue's max offset as
    // of its first rebalance, and messages sent before that are skipped by design. Start
    // from the first offset so the outcome does not depend on that race.
    let broadcasting = |b: rocketmq_client_rust::DefaultMQPushConsumerBuilder| {
        b.message_model(MessageModel::Broadcasting)
            .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
    };
    let mut c1 = recording_consumer(
        &cluster,
        &group,
        "c1",
        &topic,
        "*",
        &collector,
        broadcasting,
    )
    .await;
    let mut c2 = recording_consumer(
        &cluster,
        &group,
        "c2",
        &topic,
        "*",
        &collector,
        broadcasting,
    )
    .await;

    let producer = producer(&cluster, &unique("broadcast_pg")).await;
    let expected = bodies("broadcast", 20);
    for body in &expected {
        producer
            .send(message(&topic, "B", body))
            .await
            .expect("send")
            .expect("send result");
    }
    let per_consumer = |all: &[karman_interop_tests::Received], who: &str| {
        counts(
            all.iter()
                .filter(|r| r.consumer == who)
                .map(|r| r.body.clone()),
        )
    };
    let want = counts(expected.iter().cloned());
    let done = collector
        .wait_until(PROMPT, |all| {
            per_consumer(all, "c1").keys().collect::<Vec<_>>() == want.keys().collect::<Vec<_>>()
                && per_consumer(all, "c2").keys().collect::<Vec<_>>()
                    == want.keys().collect::<Vec<_>>()
        })
        .await;
    let received = collector.all();
    c1.shutdown().await;
    c2.shutdown().await;
    assert!(
        done,
        "broadcast incomplete: c1 {:?} c2 {:?}",
        per_consumer(&received, "c1"),
        per_consumer(&received, "c2")
    );
    assert_eq!(
        per_consumer(&received, "c1"),
        want,
        "c1 gets every message once"
    );
    assert_eq!(
        per_consumer(&received, "c2"),
        want,
        "c2 gets every message once"
    );
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}
