//! Cross tests: a karman-client producer feeds a `rocketmq-client-rust` push consumer, and
//! a `rocketmq-client-rust` producer feeds a karman-client push consumer, through a Karman
//! broker. What each side writes (tags, keys, user properties, the client message id, a
//! zlib-compressed body, a batch, queue-selected order) the other side reads back intact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeOrderlyStatus, PushConsumer, concurrently, orderly,
};
use karman_interop_tests::{Cluster, Collector, PROMPT, counts, unique};
use parking_lot::Mutex;
use rocketmq_client_rust::{ConsumeOrderlyContext, MQPushConsumer};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendStatus;

use super::{producer, recording_consumer};

/// A body over the 4 KiB compression threshold of both clients.
fn big_body() -> String {
    let body: String = (0..1000).map(|i| format!("{i:05}-")).collect();
    assert!(body.len() > 4096);
    body
}

/// The broker stored the message at `offset_msg_id` zlib-compressed (sysFlag bit 0), so
/// the consumer on the other side really had to inflate it.
async fn assert_stored_compressed(cluster: &Cluster, offset_msg_id: &str, plain_len: usize) {
    let admin = karman_client::Admin::with_config(karman_config(cluster, "viewer"))
        .await
        .expect("admin");
    let stored = admin.view_message(offset_msg_id).await.expect("view");
    admin.shutdown().await;
    assert_eq!(stored.sys_flag & 1, 1, "stored compressed");
    assert!(stored.body.len() < plain_len, "{} bytes", stored.body.len());
}

/// Settings for a karman-client producer or consumer pointed at the cluster.
fn karman_config(cluster: &Cluster, instance: &str) -> karman_client::ClientConfig {
    karman_client::ClientConfig {
        namesrv_addr: cluster.namesrv_addr().to_owned(),
        instance_name: unique(instance),
        ..karman_client::ClientConfig::default()
    }
}

/// What one side sent, to compare with what the other received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    msg_id: String,
    tags: Option<String>,
    keys: Option<String>,
    color: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn karman_client_producer_feeds_a_rocketmq_client_rust_consumer() {
    let cluster = Cluster::start("cross_k2r").await;
    let topic = unique("CrossK2R");
    cluster.create_topic(&topic, 4).await;
    let producer = karman_client::Producer::builder()
        .client_config(karman_config(&cluster, "k2r_pg"))
        .group(unique("k2r_pg"))
        .build()
        .await
        .expect("karman producer starts");

    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    for i in 0..10 {
        let body = format!("single-{i}");
        let message = karman_client::Message::new(&topic, body.clone())
            .with_tags(if i % 2 == 0 { "Even" } else { "Odd" })
            .with_keys([format!("key-{i}"), format!("alt-{i}")])
            .with_property("color", format!("c{i}"));
        let result = producer.send(message).await.expect("karman send");
        sent.insert(
            body,
            Sent {
                msg_id: result.msg_id,
                tags: Some(if i % 2 == 0 { "Even" } else { "Odd" }.to_owned()),
                keys: Some(format!("key-{i} alt-{i}")),
                color: Some(format!("c{i}")),
            },
        );
    }
    // Compressed by karman-client (zlib, sysFlag bit 0); the other client inflates it.
    let big = big_body();
    let result = producer
        .send(karman_client::Message::new(&topic, big.clone()).with_tags("Big"))
        .await
        .expect("karman send of a big body");
    assert_stored_compressed(&cluster, &result.offset_msg_id, big.len()).await;
    sent.insert(
        big.clone(),
        Sent {
            msg_id: result.msg_id,
            tags: Some("Big".to_owned()),
            keys: None,
            color: None,
        },
    );
    // A batch: one request, a msg_id per message.
    let batch: Vec<_> = (0..5)
        .map(|i| karman_client::Message::new(&topic, format!("batch-{i}")).with_tags("Batch"))
        .collect();
    let results = producer.send_batch(batch).await.expect("karman batch");
    let ids: Vec<String> = results
        .iter()
        .flat_map(|r| r.msg_id.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(ids.len(), 5, "{results:?}");
    for (i, id) in ids.into_iter().enumerate() {
        sent.insert(
            format!("batch-{i}"),
            Sent {
                msg_id: id,
                tags: Some("Batch".to_owned()),
                keys: None,
                color: None,
            },
        );
    }
    producer.shutdown().await;

    let collector = Collector::new();
    let mut consumer = recording_consumer(
        &cluster,
        &unique("k2r_cg"),
        "r",
        &topic,
        "*",
        &collector,
        |b| b,
    )
    .await;
    let done = collector.wait_count(sent.len(), PROMPT).await;
    let _ = collector
        .wait_until(Duration::from_millis(500), |all| all.len() > sent.len())
        .await;
    let received = collector.all();
    consumer.shutdown().await;
    assert!(
        done,
        "rocketmq-client-rust missed messages: {:?}",
        counts(received.iter().map(|r| r.body.clone()))
    );
    assert_eq!(
        counts(received.iter().map(|r| r.body.clone())),
        counts(sent.keys().cloned()),
        "every message once"
    );
    for r in &received {
        let want = &sent[&r.body];
        let got = Sent {
            msg_id: r.msg_id.clone(),
            tags: r.tags.clone(),
            keys: r.property("KEYS").map(str::to_owned),
            color: r.property("color").map(str::to_owned),
        };
        assert_eq!(&got, want, "{}", r.body.get(..20).unwrap_or(&r.body));
        assert_eq!(r.topic, topic);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketmq_client_rust_producer_feeds_a_karman_client_consumer() {
    let cluster = Cluster::start("cross_r2k").await;
    let topic = unique("CrossR2K");
    cluster.create_topic(&topic, 4).await;
    let mut producer = producer(&cluster, &unique("r2k_pg")).await;

    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    for i in 0..10 {
        let body = format!("single-{i}");
        let tag = if i % 2 == 0 { "Even" } else { "Odd" };
        let message = Message::builder()
            .topic(topic.as_str())
            .tags(tag)
            .keys(vec![format!("key-{i}"), format!("alt-{i}")])
            .body_slice(body.as_bytes())
            .raw_property("color", format!("c{i}"))
            .expect("user property")
            .build_unchecked();
        let result = producer
            .send(message)
            .await
            .expect("send")
            .expect("send result");
        assert_eq!(result.send_status, SendStatus::SendOk);
        sent.insert(
            body,
            Sent {
                msg_id: result.msg_id.expect("msgId").to_string(),
                tags: Some(tag.to_owned()),
                keys: Some(format!("key-{i} alt-{i}")),
                color: Some(format!("c{i}")),
            },
        );
    }
    let big = big_body();
    let result = producer
        .send(
            Message::builder()
                .topic(topic.as_str())
                .tags("Big")
                .body_slice(big.as_bytes())
                .build_unchecked(),
        )
        .await
        .expect("send of a big body")
        .expect("send result");
    assert_stored_compressed(
        &cluster,
        result.offset_msg_id.as_deref().expect("offsetMsgId"),
        big.len(),
    )
    .await;
    sent.insert(
        big.clone(),
        Sent {
            msg_id: result.msg_id.expect("msgId").to_string(),
            tags: Some("Big".to_owned()),
            keys: None,
            color: None,
        },
    );
    let batch = (0..5)
        .map(|i| {
            Message::builder()
                .topic(topic.as_str())
                .tags("Batch")
                .body_slice(format!("batch-{i}").as_bytes())
                .build_unchecked()
        })
        .collect::<Vec<_>>();
    let result = producer.send_batch(batch).await.expect("batch send");
    let ids: Vec<String> = result
        .msg_id
        .as_ref()
        .expect("batch msgId")
        .as_str()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 5, "{result:?}");
    for (i, id) in ids.into_iter().enumerate() {
        sent.insert(
            format!("batch-{i}"),
            Sent {
                msg_id: id,
                tags: Some("Batch".to_owned()),
                keys: None,
                color: None,
            },
        );
    }
    producer.shutdown().await;

    let received: Arc<Mutex<Vec<karman_client::MessageExt>>> = Arc::default();
    let sink = received.clone();
    let consumer = PushConsumer::builder()
        .client_config(karman_config(&cluster, "r2k_cg"))
        .group(unique("r2k_cg"))
        .subscribe(&topic, "*")
        .listener_concurrently(concurrently(move |messages| {
            let sink = sink.clone();
            async move {
                sink.lock().extend(messages);
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await
        .expect("karman consumer starts");
    let deadline = tokio::time::Instant::now() + PROMPT;
    while received.lock().len() < sent.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    consumer.shutdown().await;
    let received = received.lock().clone();
    let body = |m: &karman_client::MessageExt| String::from_utf8_lossy(&m.body).into_owned();
    assert_eq!(
        counts(received.iter().map(body)),
        counts(sent.keys().cloned()),
        "every message once"
    );
    for m in &received {
        let got = Sent {
            msg_id: m.msg_id(),
            tags: m.tags().map(str::to_owned),
            keys: m.properties.get("KEYS").map(str::to_owned),
            color: m.properties.get("color").map(str::to_owned),
        };
        assert_eq!(
            &got,
            &sent[&body(m)],
            "{}",
            &body(m)[..body(m).len().min(20)]
        );
        assert_eq!(m.topic, topic);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_sends_keep_their_order_across_the_two_clients() {
    const ORDERS: i32 = 6;
    const STEPS: usize = 6;
    let cluster = Cluster::start("cross_order").await;
    let topic = unique("CrossOrder");
    cluster.create_topic_with(&topic, 4, true).await;

    // rocketmq-client-rust sends with a selector by order id…
    let mut r_producer = producer(&cluster, &unique("cross_order_rpg")).await;
    let selector = |queues: &[MessageQueue], _m: &Message, order: &i32| {
        let n = i32::try_from(queues.len()).ok()?;
        queues
            .get(usize::try_from(order.rem_euclid(n)).ok()?)
            .cloned()
    };
    // …and karman-client by hashing the order id as a string.
    let k_producer = karman_client::Producer::builder()
        .client_config(karman_config(&cluster, "cross_order_kpg"))
        .group(unique("cross_order_kpg"))
        .build()
        .await
        .expect("karman producer starts");
    for step in 0..STEPS {
        for order in 0..ORDERS {
            let body = format!("r-{order}-{step}");
            r_producer
                .send_with_selector(super::message(&topic, "O", &body), selector, order)
                .await
                .expect("ordered send")
                .expect("send result");
            let body = format!("k-{order}-{step}");
            k_producer
                .send_ordered(
                    karman_client::Message::new(&topic, body).with_tags("O"),
                    &format!("order-{order}"),
                )
                .await
                .expect("karman ordered send");
        }
    }
    r_producer.shutdown().await;
    k_producer.shutdown().await;

    // A karman-client orderly consumer and a rocketmq-client-rust orderly consumer, each in
    // a group of its own, both see every order in send order.
    let karman_seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = karman_seen.clone();
    let k_consumer = PushConsumer::builder()
        .client_config(karman_config(&cluster, "cross_order_kcg"))
        .group(unique("cross_order_kcg"))
        .subscribe(&topic, "*")
        .listener_orderly(orderly(move |messages| {
            let sink = sink.clone();
            async move {
                sink.lock().extend(
                    messages
                        .iter()
                        .map(|m| String::from_utf8_lossy(&m.body).into_owned()),
                );
                ConsumeOrderlyStatus::Success
            }
        }))
        .start()
        .await
        .expect("karman orderly consumer starts");
    let collector = Collector::new();
    let mut r_consumer =
        super::push_consumer_builder(&cluster, &unique("cross_order_rcg"), "orderly").build();
    r_consumer
        .subscribe(topic.clone(), "*")
        .await
        .expect("subscribe");
    let seen = collector.clone();
    r_consumer.register_message_listener_orderly(
        move |msgs: &[&MessageExt], _ctx: &mut ConsumeOrderlyContext| {
            for msg in msgs {
                seen.record("orderly", msg);
            }
            Ok(rocketmq_client_rust::ConsumeOrderlyStatus::Success)
        },
    );
    r_consumer.start().await.expect("orderly consumer starts");

    let total = 2 * usize::try_from(ORDERS).unwrap() * STEPS;
    let r_done = collector.wait_count(total, PROMPT).await;
    let deadline = tokio::time::Instant::now() + PROMPT;
    while karman_seen.lock().len() < total && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    r_consumer.shutdown().await;
    k_consumer.shutdown().await;
    assert!(
        r_done,
        "rocketmq-client-rust got {} of {total}",
        collector.all().len()
    );
    for (who, got) in [
        ("karman-client", karman_seen.lock().clone()),
        ("rocketmq-client-rust", collector.bodies()),
    ] {
        assert_eq!(got.len(), total, "{who}: every message once: {got:?}");
        let distinct: BTreeSet<&String> = got.iter().collect();
        assert_eq!(distinct.len(), total, "{who}: no duplicates");
        for sender in ["r", "k"] {
            for order in 0..ORDERS {
                let prefix = format!("{sender}-{order}-");
                let steps: Vec<&str> = got
                    .iter()
                    .filter(|b| b.starts_with(&prefix))
                    .map(String::as_str)
                    .collect();
                let want: Vec<String> = (0..STEPS).map(|s| format!("{prefix}{s}")).collect();
                assert_eq!(steps, want, "{who}: order {prefix} out of send order");
            }
        }
    }
    cluster.shutdown().await;
}
