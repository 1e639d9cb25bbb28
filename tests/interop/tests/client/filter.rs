//! A tag filter (`TagA || TagB`) and a SQL92 filter (`a > 5 AND b = 'x'`) deliver exactly
//! the matching messages.

// DefaultMQPullConsumer (deprecated in the client, still shipped) pulls with an expression.
#![allow(deprecated)]

use std::collections::BTreeSet;
use std::time::Duration;

use karman_interop_tests::{Cluster, ClusterOptions, Collector, PROMPT, unique};
use rocketmq_client_rust::{ClientOptions, DefaultMQPullConsumer, PullStatus};
use rocketmq_client_rust::{
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, MQPushConsumer, MessageSelector,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;

use super::{client_config, message, producer, push_consumer_builder, recording_consumer};

/// After the last matching message arrives, how long to keep listening for a wrong one.
const QUIET: Duration = Duration::from_secs(2);

/// `rocketmq-client-rust` 1.0.0 builds a tag subscription's `codeSet` from the untrimmed
/// pieces of the expression (rocketmq-protocol-1.0.0 `src/protocol/filter/filter_api.rs`
/// line 48 hashes `tag`, not `trimmed_tag`), so `TagA || TagB` registers the hash codes of
/// `"TagA "` and `" TagB"` in its heartbeat, and a broker that filters by `codeSet`, as Java
/// brokers do, matches nothing. The push consumer therefore subscribes with the same
/// expression written without spaces. The literal `TagA || TagB` is checked through pulls
/// that carry the expression, which the broker parses itself.
const PUSH_TAG_EXPRESSION: &str = "TagA||TagB";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_filter_delivers_exactly_tag_a_or_tag_b() {
    let cluster = Cluster::start("tagfilter").await;
    let topic = unique("TagTopic");
    cluster.create_topic(&topic, 2).await;
    let collector = Collector::new();
    let mut consumer = recording_consumer(
        &cluster,
        &unique("tag_cg"),
        "c",
        &topic,
        PUSH_TAG_EXPRESSION,
        &collector,
        |b| b,
    )
    .await;
    let producer = producer(&cluster, &unique("tag_pg")).await;
    let mut expected = BTreeSet::new();
    for i in 0..30 {
        let tag = ["TagA", "TagB", "TagC", "tagA", ""][i % 5];
        let body = format!("{}-{i}", if tag.is_empty() { "untagged" } else { tag });
        let msg = if tag.is_empty() {
            Message::builder()
                .topic(topic.as_str())
                .body_slice(body.as_bytes())
                .build_unchecked()
        } else {
            message(&topic, tag, &body)
        };
        producer
            .send(msg)
            .await
            .expect("send")
            .expect("send result");
        if tag == "TagA" || tag == "TagB" {
            expected.insert(body);
        }
    }
    let received = collect_exactly(&collector, &expected).await;
    consumer.shutdown().await;
    assert_eq!(received, expected.iter().cloned().collect::<Vec<_>>());

    // The literal expression, carried in each pull request.
    let puller = DefaultMQPullConsumer::builder(karman_interop_tests::client_runtime("tagpull"))
        .client_options(ClientOptions::from(client_config(&cluster, "tagpull")))
        .consumer_group(unique("tag_pull_cg"))
        .build()
        .expect("pull consumer");
    puller.start().await.expect("pull consumer starts");
    let mut pulled = Vec::new();
    for queue_id in 0..2 {
        let queue = MessageQueue::from_parts(&topic, cluster.broker_name(), queue_id);
        let result = puller
            .pull(&queue, "TagA || TagB", 0, 32)
            .await
            .expect("pull with a tag expression");
        assert_eq!(*result.pull_status(), PullStatus::Found);
        pulled.extend(
            result
                .msg_found_list()
                .unwrap_or_default()
                .iter()
                .map(|m| String::from_utf8_lossy(&m.body().unwrap_or_default()).into_owned()),
        );
    }
    pulled.sort();
    puller.shutdown().await.expect("pull consumer stops");
    assert_eq!(pulled, expected.iter().cloned().collect::<Vec<_>>());
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_filter_delivers_exactly_the_matching_messages() {
    let cluster = Cluster::start_with(
        "sqlfilter",
        ClusterOptions {
            broker: |c| c.enable_property_filter = true,
            ..ClusterOptions::default()
        },
    )
    .await;
    let topic = unique("SqlTopic");
    cluster.create_topic(&topic, 2).await;
    let collector = Collector::new();
    let mut consumer = push_consumer_builder(&cluster, &unique("sql_cg"), "sql").build();
    consumer
        .subscribe_with_selector(&topic, Some(MessageSelector::by_sql("a > 5 AND b = 'x'")))
        .await
        .expect("subscribe with SQL92");
    let seen = collector.clone();
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            for msg in msgs {
                seen.record("sql", msg);
            }
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    consumer.start().await.expect("consumer starts");

    let producer = producer(&cluster, &unique("sql_pg")).await;
    // (a, b): a missing property never matches; strings compare exactly.
    let cases: [(Option<&str>, Option<&str>); 9] = [
        (Some("6"), Some("x")),   // match
        (Some("5"), Some("x")),   // a not > 5
        (Some("10"), Some("y")),  // b differs
        (Some("7"), None),        // b missing
        (None, Some("x")),        // a missing
        (Some("100"), Some("x")), // match
        (Some("-3"), Some("x")),  // a negative
        (Some("6"), Some("X")),   // case matters
        (Some("5.5"), Some("x")), // match: a double > 5
    ];
    let mut expected = BTreeSet::new();
    for (i, (a, b)) in cases.iter().enumerate() {
        let body = format!(
            "sql-{i}-a={}-b={}",
            a.unwrap_or("none"),
            b.unwrap_or("none")
        );
        let mut builder = Message::builder()
            .topic(topic.as_str())
            .tags("S")
            .body_slice(body.as_bytes());
        if let Some(a) = a {
            builder = builder.raw_property("a", *a).expect("user property a");
        }
        if let Some(b) = b {
            builder = builder.raw_property("b", *b).expect("user property b");
        }
        producer
            .send(builder.build_unchecked())
            .await
            .expect("send")
            .expect("send result");
        if matches!(i, 0 | 5 | 8) {
            expected.insert(body);
        }
    }
    let received = collect_exactly(&collector, &expected).await;
    consumer.shutdown().await;
    assert_eq!(received, expected.iter().cloned().collect::<Vec<_>>());
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Waits for every expected body, then listens a little longer for anything else; returns
/// the sorted bodies received.
async fn collect_exactly(collector: &Collector, expected: &BTreeSet<String>) -> Vec<String> {
    let complete = collector
        .wait_until(PROMPT, |all| {
            let got: BTreeSet<&str> = all.iter().map(|r| r.body.as_str()).collect();
            expected.iter().all(|b| got.contains(b.as_str()))
        })
        .await;
    let _ = collector
        .wait_until(QUIET, |all| all.len() > expected.len())
        .await;
    let mut received = collector.bodies();
    received.sort();
    assert!(
        complete,
        "matching messages missing: got {received:?}, want {expected:?}"
    );
    received
}
