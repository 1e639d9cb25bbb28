//! A tag filter (`TagA || TagB`) and a SQL92 filter (`a > 5 AND b = 'x'`) deliver exactly
//! the matching messages.

use std::collections::BTreeSet;
use std::time::Duration;

use karman_client::Message;
use karman_client::consumer::{ConsumeConcurrentlyStatus, concurrently};

use crate::harness::{Cluster, Collector, PROMPT, unique};

/// After the last matching message arrives, how long to keep listening for a wrong one.
const QUIET: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_filter_delivers_exactly_tag_a_or_tag_b() {
    let cluster = Cluster::start("tagfilter").await;
    let topic = unique("TagTopic");
    cluster.create_topic(&topic, 2).await;
    let collector = Collector::new();
    // The expression exactly as a Java user writes it, spaces included.
    let consumer = cluster
        .recording_consumer(
            &unique("tag_cg"),
            "c",
            &topic,
            "TagA || TagB",
            &collector,
            |b| b,
        )
        .await;
    let producer = cluster.producer(&unique("tag_pg")).await;
    let mut expected = BTreeSet::new();
    for i in 0..30 {
        let tag = ["TagA", "TagB", "TagC", "tagA", ""][i % 5];
        let body = format!("{}-{i}", if tag.is_empty() { "untagged" } else { tag });
        let message = Message::new(&topic, body.clone());
        let message = if tag.is_empty() {
            message
        } else {
            message.with_tags(tag)
        };
        producer.send(message).await.expect("send");
        if tag == "TagA" || tag == "TagB" {
            expected.insert(body);
        }
    }
    let received = collect_exactly(&collector, &expected).await;
    consumer.shutdown().await;
    assert_eq!(received, expected.iter().cloned().collect::<Vec<_>>());
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_filter_delivers_exactly_the_matching_messages() {
    let cluster = Cluster::start_with("sqlfilter", |c| c.enable_property_filter = true).await;
    let topic = unique("SqlTopic");
    cluster.create_topic(&topic, 2).await;
    let collector = Collector::new();
    let seen = collector.clone();
    let consumer = cluster
        .push_consumer(&unique("sql_cg"), "sql")
        .subscribe_sql92(&topic, "a > 5 AND b = 'x'")
        .listener_concurrently(concurrently(move |messages| {
            let seen = seen.clone();
            async move {
                for m in &messages {
                    seen.record("sql", m);
                }
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await
        .expect("consumer with an SQL92 subscription starts");

    let producer = cluster.producer(&unique("sql_pg")).await;
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
        let mut message = Message::new(&topic, body.clone()).with_tags("S");
        if let Some(a) = a {
            message = message.with_property("a", *a);
        }
        if let Some(b) = b {
            message = message.with_property("b", *b);
        }
        producer.send(message).await.expect("send");
        if matches!(i, 0 | 5 | 8) {
            expected.insert(body);
        }
    }
    let received = collect_exactly(&collector, &expected).await;
    consumer.shutdown().await;
    assert_eq!(received, expected.iter().cloned().collect::<Vec<_>>());
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
