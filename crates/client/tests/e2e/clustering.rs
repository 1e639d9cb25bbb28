//! Clustering: two consumers of one group split the queues and together receive every
//! message once. Broadcasting: each consumer receives all.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use karman_client::consumer::{ConsumeFromWhere, MessageModel};
use karman_client::{Message, MessageQueue, Producer};

use crate::harness::{Cluster, Collector, PROMPT, Received, bodies, counts, eventually, unique};

const QUEUES: i32 = 4;
const MESSAGES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_consumers_split_the_queues_and_receive_each_message_once() {
    let cluster = Cluster::start("clustering").await;
    let topic = unique("ClusterTopic");
    cluster.create_topic(&topic, QUEUES).await;
    let group = unique("clustering_cg");
    let collector = Collector::new();
    let c1 = cluster
        .recording_consumer(&group, "c1", &topic, "*", &collector, |b| b)
        .await;
    let c2 = cluster
        .recording_consumer(&group, "c2", &topic, "*", &collector, |b| b)
        .await;
    // The group has settled when each member owns two queues and they are disjoint.
    eventually(PROMPT, "each member owns half of the queues", || {
        let q1: BTreeSet<MessageQueue> = c1
            .assigned_queues()
            .into_iter()
            .filter(|q| q.topic == topic)
            .collect();
        let q2: BTreeSet<MessageQueue> = c2
            .assigned_queues()
            .into_iter()
            .filter(|q| q.topic == topic)
            .collect();
        q1.len() == 2 && q2.len() == 2 && q1.is_disjoint(&q2)
    })
    .await;
    let owners: BTreeMap<i32, &str> = c1
        .assigned_queues()
        .iter()
        .filter(|q| q.topic == topic)
        .map(|q| (q.queue_id, "c1"))
        .chain(
            c2.assigned_queues()
                .iter()
                .filter(|q| q.topic == topic)
                .map(|q| (q.queue_id, "c2")),
        )
        .collect();

    let producer = cluster.producer(&unique("clustering_pg")).await;
    let expected = bodies("clustered", MESSAGES);
    for (i, body) in expected.iter().enumerate() {
        let queue = i32::try_from(i).unwrap() % QUEUES;
        send_to(&cluster, &producer, &topic, queue, body).await;
    }
    let done = collector
        .wait_until(PROMPT, |all| {
            let got: BTreeSet<&str> = all.iter().map(|r| r.body.as_str()).collect();
            expected.iter().all(|b| got.contains(b.as_str()))
        })
        .await;
    // Give a duplicate a moment to show up before judging "once".
    let _ = collector
        .wait_until(Duration::from_millis(500), |all| all.len() > MESSAGES)
        .await;
    let received = collector.all();
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
    producer.shutdown().await;
    cluster.shutdown().await;
}

async fn send_to(cluster: &Cluster, producer: &Producer, topic: &str, queue_id: i32, body: &str) {
    let mq = MessageQueue::new(topic, cluster.broker_name(), queue_id);
    let result = producer
        .send_to_queue(Message::new(topic, body.to_owned()).with_tags("T"), mq)
        .await
        .expect("send to queue");
    assert_eq!(result.queue.queue_id, queue_id, "explicit queue honoured");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_consumers_each_receive_every_message() {
    let cluster = Cluster::start("broadcast").await;
    let topic = unique("BroadcastTopic");
    cluster.create_topic(&topic, QUEUES).await;
    let group = unique("broadcast_cg");
    let collector = Collector::new();
    // Broadcasting offsets live in a local file: keep them in the test's temp dir.
    let offsets = tempfile::tempdir().expect("offset dir");
    let broadcasting = |b: karman_client::consumer::PushConsumerBuilder| {
        b.message_model(MessageModel::Broadcasting)
            .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
            .offset_store_dir(offsets.path())
    };
    let c1 = cluster
        .recording_consumer(&group, "c1", &topic, "*", &collector, broadcasting)
        .await;
    let c2 = cluster
        .recording_consumer(&group, "c2", &topic, "*", &collector, broadcasting)
        .await;
    for c in [&c1, &c2] {
        eventually(PROMPT, "a broadcasting member owns every queue", || {
            c.assigned_queues()
                .iter()
                .filter(|q| q.topic == topic)
                .count()
                == 4
        })
        .await;
    }

    let producer = cluster.producer(&unique("broadcast_pg")).await;
    let expected = bodies("broadcast", 20);
    for body in &expected {
        producer
            .send(Message::new(&topic, body.clone()).with_tags("B"))
            .await
            .expect("send");
    }
    let per_consumer = |all: &[Received], who: &str| {
        counts(
            all.iter()
                .filter(|r| r.consumer == who)
                .map(|r| r.body.clone()),
        )
    };
    let want = counts(expected.iter().cloned());
    let done = collector
        .wait_until(PROMPT, |all| {
            per_consumer(all, "c1").len() == want.len()
                && per_consumer(all, "c2").len() == want.len()
        })
        .await;
    let _ = collector
        .wait_until(Duration::from_millis(500), |all| {
            all.len() > 2 * expected.len()
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
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A broadcasting consumer keeps its offsets in a local file: restarted with the same
/// client id, it resumes after what it consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_broadcasting_consumer_resumes_from_its_offset_file() {
    let cluster = Cluster::start("broadcast_restart").await;
    let topic = unique("BroadcastRestart");
    cluster.create_topic(&topic, 2).await;
    let group = unique("broadcast_restart_cg");
    let offsets = tempfile::tempdir().expect("offset dir");
    // One fixed instance name: the offset file lives under the client id.
    let instance = unique("bcast");
    let start = |collector: Collector| {
        let config = karman_client::ClientConfig {
            instance_name: instance.clone(),
            ..cluster.client_config("unused")
        };
        let (group, topic, dir) = (group.clone(), topic.clone(), offsets.path().to_owned());
        async move {
            let seen = collector.clone();
            karman_client::consumer::PushConsumer::builder()
                .client_config(config)
                .group(group)
                .subscribe(topic, "*")
                .message_model(MessageModel::Broadcasting)
                .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
                .offset_store_dir(dir)
                .listener_concurrently(karman_client::consumer::concurrently(move |messages| {
                    let seen = seen.clone();
                    async move {
                        for m in &messages {
                            seen.record("b", m);
                        }
                        karman_client::consumer::ConsumeConcurrentlyStatus::ConsumeSuccess
                    }
                }))
                .start()
                .await
                .expect("broadcasting consumer starts")
        }
    };
    let producer = cluster.producer(&unique("broadcast_restart_pg")).await;
    let send = |prefix: &'static str| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            for body in bodies(prefix, 10) {
                producer
                    .send(Message::new(&topic, body))
                    .await
                    .expect("send");
            }
        }
    };
    send("first").await;
    let first = Collector::new();
    let consumer = start(first.clone()).await;
    assert!(first.wait_count(10, PROMPT).await, "{:?}", first.bodies());
    consumer.shutdown().await;

    send("second").await;
    let second = Collector::new();
    let consumer = start(second.clone()).await;
    assert!(second.wait_count(10, PROMPT).await, "{:?}", second.bodies());
    let _ = second
        .wait_until(Duration::from_millis(500), |all| all.len() > 10)
        .await;
    consumer.shutdown().await;
    assert_eq!(
        counts(second.bodies()),
        counts(bodies("second", 10)),
        "the restarted member resumes after what it consumed"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}
