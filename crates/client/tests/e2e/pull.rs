//! A pull consumer reads from explicit offsets; committed offsets survive a consumer
//! restart and a broker restart. karman-client's pull consumer is the lite pull consumer
//! (Java's `DefaultLitePullConsumer`): `assign` + `seek` read from explicit offsets,
//! `commit` stores them on the broker.

use std::collections::BTreeMap;
use std::time::Duration;

use karman_client::consumer::LitePullConsumer;
use karman_client::{Message, MessageExt, MessageQueue, Producer};
use tokio::time::Instant;

use crate::harness::{Cluster, Collector, PROMPT, unique};

const MESSAGES: i64 = 10;

async fn fill_queue(cluster: &Cluster, producer: &Producer, topic: &str) -> MessageQueue {
    let queue = MessageQueue::new(topic, cluster.broker_name(), 0);
    for i in 0..MESSAGES {
        let result = producer
            .send_to_queue(
                Message::new(topic, format!("msg-{i}")).with_tags("P"),
                queue.clone(),
            )
            .await
            .expect("send");
        assert_eq!(result.queue_offset, i, "consecutive queue offsets");
    }
    queue
}

fn bodies_of(messages: &[MessageExt]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect()
}

fn expected(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("msg-{i}")).collect()
}

/// A lite pull consumer of `group` in assign mode with manual commits, polling `queue`.
async fn assign_consumer(cluster: &Cluster, group: &str, queue: &MessageQueue) -> LitePullConsumer {
    let consumer = LitePullConsumer::builder()
        .client_config(cluster.client_config("lite"))
        .group(group)
        .pull_batch_size(4)
        .auto_commit(false)
        .build()
        .await
        .expect("lite pull consumer");
    let queues = consumer
        .fetch_message_queues(&queue.topic)
        .await
        .expect("queues of the topic");
    assert!(queues.contains(queue), "{queues:?}");
    consumer.assign(vec![queue.clone()]).await.expect("assign");
    consumer
}

/// Polls until something arrives; returns what that poll returned.
async fn first_poll(consumer: &LitePullConsumer) -> Vec<MessageExt> {
    let deadline = Instant::now() + PROMPT;
    loop {
        let messages = consumer.poll(Duration::from_millis(500)).await;
        if !messages.is_empty() {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "nothing polled within {PROMPT:?}"
        );
    }
}

/// Polls until `n` messages arrived (or `PROMPT` passed); returns them in poll order.
async fn poll_n(consumer: &LitePullConsumer, n: usize) -> Vec<MessageExt> {
    let deadline = Instant::now() + PROMPT;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(consumer.poll(Duration::from_millis(500)).await);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lite_pull_consumer_reads_from_explicit_offsets() {
    let cluster = Cluster::start("pull").await;
    let topic = unique("PullTopic");
    cluster.create_topic(&topic, 2).await;
    let producer = cluster.producer(&unique("pull_pg")).await;
    let queue = fill_queue(&cluster, &producer, &topic).await;
    let empty_queue = MessageQueue::new(&topic, cluster.broker_name(), 1);

    let admin = cluster.admin();
    assert_eq!(admin.min_offset(&queue).await.expect("min offset"), 0);
    assert_eq!(
        admin.max_offset(&queue).await.expect("max offset"),
        MESSAGES
    );
    assert_eq!(admin.max_offset(&empty_queue).await.expect("max offset"), 0);

    let consumer = assign_consumer(&cluster, &unique("pull_cg"), &queue).await;
    consumer.seek(&queue, 3).await.expect("seek to 3");
    let from_3 = poll_n(&consumer, usize::try_from(MESSAGES - 3).unwrap()).await;
    assert_eq!(
        bodies_of(&from_3),
        expected(3..MESSAGES),
        "read from offset 3"
    );
    assert_eq!(
        from_3.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
        (3..MESSAGES).collect::<Vec<_>>()
    );

    consumer.seek(&queue, 0).await.expect("seek to 0");
    let all = poll_n(&consumer, usize::try_from(MESSAGES).unwrap()).await;
    assert_eq!(bodies_of(&all), expected(0..MESSAGES), "read again from 0");

    consumer
        .seek(&queue, MESSAGES - 1)
        .await
        .expect("seek to the last");
    assert_eq!(
        bodies_of(&first_poll(&consumer).await),
        expected(MESSAGES - 1..MESSAGES)
    );

    // At the end nothing more comes; past the end a seek is refused.
    consumer.seek(&queue, MESSAGES).await.expect("seek to max");
    assert!(consumer.poll(Duration::from_millis(500)).await.is_empty());
    let beyond = consumer.seek(&queue, MESSAGES + 50).await;
    assert!(beyond.is_err(), "seek past max offset: {beyond:?}");
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

async fn commit(consumer: &LitePullConsumer, queue: &MessageQueue, offset: i64) {
    consumer
        .commit(BTreeMap::from([(queue.clone(), offset)]))
        .await
        .expect("commit");
    assert_eq!(
        consumer.committed(queue).await,
        offset,
        "read back from the broker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_consumer_restart_and_a_broker_restart() {
    let mut cluster = Cluster::start("offsets").await;
    let topic = unique("OffsetTopic");
    cluster.create_topic(&topic, 1).await;
    let producer = cluster.producer(&unique("offsets_pg")).await;
    let queue = fill_queue(&cluster, &producer, &topic).await;
    producer.shutdown().await;
    let group = unique("offsets_cg");

    let consumer = assign_consumer(&cluster, &group, &queue).await;
    consumer.seek(&queue, 2).await.expect("seek");
    let polled = first_poll(&consumer).await;
    assert_eq!(polled[0].queue_offset, 2, "{:?}", bodies_of(&polled));
    commit(&consumer, &queue, 6).await;
    consumer.shutdown().await;

    // Consumer restart: the new instance starts where the group committed.
    let consumer = assign_consumer(&cluster, &group, &queue).await;
    assert_eq!(consumer.committed(&queue).await, 6);
    let polled = first_poll(&consumer).await;
    assert_eq!(bodies_of(&polled)[0], "msg-6", "{:?}", bodies_of(&polled));
    commit(&consumer, &queue, 8).await;
    consumer.shutdown().await;

    // Broker restart (clean shutdown, same data dir, new port).
    cluster.restart_broker(&topic).await;
    let consumer = assign_consumer(&cluster, &group, &queue).await;
    assert_eq!(
        consumer.committed(&queue).await,
        8,
        "after a broker restart"
    );
    let polled = poll_n(&consumer, 2).await;
    assert_eq!(
        bodies_of(&polled),
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
    let producer = cluster.producer(&unique("resume_pg")).await;
    // First life: consume ten; shutdown persists the group's offsets.
    send_ten(&producer, &topic, "first").await;
    let first = Collector::new();
    let consumer = cluster
        .recording_consumer(&group, "first", &topic, "*", &first, |b| b)
        .await;
    assert!(first.wait_count(10, PROMPT).await, "{:?}", first.bodies());
    consumer.shutdown().await;

    // Second life, after a consumer restart: only what was sent since.
    send_ten(&producer, &topic, "second").await;
    let second = Collector::new();
    let consumer = cluster
        .recording_consumer(&group, "second", &topic, "*", &second, |b| b)
        .await;
    assert!(second.wait_count(10, PROMPT).await, "{:?}", second.bodies());
    let _ = second
        .wait_until(Duration::from_secs(1), |all| all.len() > 10)
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
    producer.shutdown().await;

    // Third life, after a broker restart.
    cluster.restart_broker(&topic).await;
    let producer = cluster.producer(&unique("resume_pg2")).await;
    send_ten(&producer, &topic, "third").await;
    let third = Collector::new();
    let consumer = cluster
        .recording_consumer(&group, "third", &topic, "*", &third, |b| b)
        .await;
    assert!(third.wait_count(10, PROMPT).await, "{:?}", third.bodies());
    let _ = third
        .wait_until(Duration::from_secs(1), |all| all.len() > 10)
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
    cluster.shutdown().await;
}

async fn send_ten(producer: &Producer, topic: &str, prefix: &str) {
    for i in 0..10 {
        producer
            .send(Message::new(topic, format!("{prefix}-{i}")).with_tags("R"))
            .await
            .expect("send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribing_lite_pull_consumer_polls_every_message_once() {
    let cluster = Cluster::start("litesub").await;
    let topic = unique("LiteSubTopic");
    cluster.create_topic(&topic, 4).await;
    let producer = cluster.producer(&unique("litesub_pg")).await;
    send_ten(&producer, &topic, "lite").await;

    let consumer = LitePullConsumer::builder()
        .client_config(cluster.client_config("litesub"))
        .group(unique("litesub_cg"))
        .pull_batch_size(4)
        .build()
        .await
        .expect("lite pull consumer");
    consumer.subscribe(&topic, "R").await.expect("subscribe");
    let mut got = bodies_of(&poll_n(&consumer, 10).await);
    // Anything more would be a duplicate.
    got.extend(bodies_of(&consumer.poll(Duration::from_millis(500)).await));
    consumer.shutdown().await;
    got.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("lite-{i}")).collect();
    want.sort();
    assert_eq!(got, want, "every message once");
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Two subscribing lite pull consumers of one group split the queues (rebalance through
/// the broker) and together poll every message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscribing_lite_pull_consumers_split_the_queues() {
    use std::collections::BTreeSet;

    let cluster = Cluster::start("litesplit").await;
    let topic = unique("LiteSplitTopic");
    cluster.create_topic(&topic, 4).await;
    let group = unique("litesplit_cg");
    let member = |name: &str| {
        LitePullConsumer::builder()
            .client_config(cluster.client_config(name))
            .group(&group)
            .pull_batch_size(4)
            .build()
    };
    let a = member("a").await.expect("lite pull consumer");
    let b = member("b").await.expect("lite pull consumer");
    a.subscribe(&topic, "*").await.expect("subscribe");
    b.subscribe(&topic, "*").await.expect("subscribe");
    let queues = |c: &LitePullConsumer| -> BTreeSet<i32> {
        c.assignment()
            .into_iter()
            .filter(|q| q.topic == topic)
            .map(|q| q.queue_id)
            .collect()
    };
    let settled = crate::harness::wait_for(PROMPT, || {
        let (qa, qb) = (queues(&a), queues(&b));
        qa.len() == 2 && qb.len() == 2 && qa.is_disjoint(&qb)
    })
    .await;
    assert!(settled, "a {:?} b {:?}", queues(&a), queues(&b));

    let producer = cluster.producer(&unique("litesplit_pg")).await;
    for i in 0..40 {
        producer
            .send(Message::new(&topic, format!("split-{i}")))
            .await
            .expect("send");
    }
    let mut got: Vec<(char, MessageExt)> = Vec::new();
    let deadline = Instant::now() + PROMPT;
    while got.len() < 40 && Instant::now() < deadline {
        for (name, c) in [('a', &a), ('b', &b)] {
            got.extend(
                c.poll(Duration::from_millis(100))
                    .await
                    .into_iter()
                    .map(|m| (name, m)),
            );
        }
    }
    for (name, c) in [('a', &a), ('b', &b)] {
        got.extend(
            c.poll(Duration::from_millis(300))
                .await
                .into_iter()
                .map(|m| (name, m)),
        );
    }
    let (qa, qb) = (queues(&a), queues(&b));
    a.shutdown().await;
    b.shutdown().await;
    let mut bodies: Vec<String> = got
        .iter()
        .map(|(_, m)| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    bodies.sort();
    let mut want: Vec<String> = (0..40).map(|i| format!("split-{i}")).collect();
    want.sort();
    assert_eq!(bodies, want, "every message once across the group");
    for (name, m) in &got {
        let mine = if *name == 'a' { &qa } else { &qb };
        assert!(
            mine.contains(&m.queue_id),
            "{name} polled queue {}",
            m.queue_id
        );
    }
    assert!(got.iter().any(|(n, _)| *n == 'a') && got.iter().any(|(n, _)| *n == 'b'));
    producer.shutdown().await;
    cluster.shutdown().await;
}
