//! Messages sent with a queue selector by order id and consumed by an orderly listener
//! arrive in send order for every order id.

use std::collections::BTreeMap;

use karman_client::consumer::{ConsumeOrderlyStatus, orderly};
use karman_client::{Message, MessageQueue};

use crate::harness::{Cluster, Collector, PROMPT, unique};

const QUEUES: i32 = 4;
const ORDERS: i32 = 10;
const STEPS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_by_order_id_and_orderly_listener_keep_send_order_per_order_id() {
    let cluster = Cluster::start("order").await;
    let topic = unique("OrderTopic");
    cluster.create_topic_with(&topic, QUEUES, true).await;

    let collector = Collector::new();
    let seen = collector.clone();
    let consumer = cluster
        .push_consumer(&unique("order_cg"), "orderly")
        .subscribe(&topic, "*")
        .listener_orderly(orderly(move |messages| {
            let seen = seen.clone();
            async move {
                for m in &messages {
                    seen.record("orderly", m);
                }
                ConsumeOrderlyStatus::Success
            }
        }))
        .start()
        .await
        .expect("orderly consumer starts");

    let producer = cluster.producer(&unique("order_pg")).await;
    let selector = |queues: &[MessageQueue], _m: &Message, order_id: &i32| {
        let n = i32::try_from(queues.len()).ok()?;
        queues
            .get(usize::try_from(order_id.rem_euclid(n)).ok()?)
            .cloned()
    };
    // Interleave the orders: step s of every order, then step s + 1, ...
    let mut queue_of = BTreeMap::new();
    for step in 0..STEPS {
        for order in 0..ORDERS {
            let body = format!("order-{order}-step-{step}");
            let result = producer
                .send_with_selector(Message::new(&topic, body).with_tags("O"), &selector, &order)
                .await
                .expect("ordered send");
            assert_eq!(
                result.queue.queue_id,
                order % QUEUES,
                "the broker stores in the selected queue"
            );
            queue_of.insert(order, result.queue.queue_id);
        }
    }

    let total = usize::try_from(ORDERS).unwrap() * STEPS;
    let done = collector.wait_count(total, PROMPT).await;
    let _ = collector
        .wait_until(std::time::Duration::from_millis(500), |all| {
            all.len() > total
        })
        .await;
    let received = collector.all();
    consumer.shutdown().await;
    assert!(
        done,
        "orderly delivery incomplete: {} of {total}",
        received.len()
    );
    for order in 0..ORDERS {
        let prefix = format!("order-{order}-");
        let mine: Vec<_> = received
            .iter()
            .filter(|r| r.body.starts_with(&prefix))
            .collect();
        let got: Vec<&str> = mine.iter().map(|r| r.body.as_str()).collect();
        let want: Vec<String> = (0..STEPS)
            .map(|s| format!("order-{order}-step-{s}"))
            .collect();
        assert_eq!(got, want, "order {order} out of send order");
        assert!(
            mine.iter().all(|r| r.queue_id == queue_of[&order]),
            "order {order} came from one queue"
        );
    }
    assert_eq!(received.len(), total, "no duplicates");
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// SUSPEND_CURRENT_QUEUE_A_MOMENT keeps the queue blocked and re-consumes locally (no
/// broker send-back, spec semantics.md §7.6); past maxReconsumeTimes the message goes to
/// `%RETRY%<group>` marked with MAX_RECONSUME_TIMES, which the broker turns into
/// `%DLQ%<group>`, and the queue moves on in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_orderly_message_is_retried_in_place_then_dead_lettered() {
    use std::time::Duration;

    use karman_client::consumer::PushConsumerConfig;

    let cluster = Cluster::start("suspend").await;
    let topic = unique("SuspendTopic");
    cluster.create_topic_with(&topic, 1, true).await;
    let group = unique("suspend_cg");
    let collector = Collector::new();
    let seen = collector.clone();
    let consumer = cluster
        .push_consumer(&group, "suspend")
        .consumer_config(PushConsumerConfig {
            max_reconsume_times: 2,
            suspend_current_queue_time: Duration::from_millis(200),
            ..PushConsumerConfig::default()
        })
        .subscribe(&topic, "*")
        .listener_orderly(orderly(move |messages| {
            let seen = seen.clone();
            async move {
                for m in &messages {
                    seen.record("orderly", m);
                }
                if messages.iter().any(|m| m.body.as_ref() == b"poison") {
                    ConsumeOrderlyStatus::SuspendCurrentQueueAMoment
                } else {
                    ConsumeOrderlyStatus::Success
                }
            }
        }))
        .start()
        .await
        .expect("orderly consumer starts");
    let producer = cluster.producer(&unique("suspend_pg")).await;
    let mut poison_id = String::new();
    for body in ["before", "poison", "after-1", "after-2"] {
        let sent = producer
            .send(Message::new(&topic, body).with_tags("S"))
            .await
            .expect("send");
        if body == "poison" {
            poison_id = sent.msg_id;
        }
    }
    let done = collector
        .wait_until(PROMPT, |all| all.iter().any(|r| r.body == "after-2"))
        .await;
    let _ = collector
        .wait_until(Duration::from_millis(500), |all| all.len() > 6)
        .await;
    let received = collector.all();
    consumer.shutdown().await;
    assert!(
        done,
        "the queue never moved past the poison message: {received:#?}"
    );
    let order: Vec<(&str, i32)> = received
        .iter()
        .map(|r| (r.body.as_str(), r.reconsume_times))
        .collect();
    assert_eq!(
        order,
        [
            ("before", 0),
            ("poison", 0),
            ("poison", 1),
            ("poison", 2),
            ("after-1", 0),
            ("after-2", 0)
        ],
        "suspended in place maxReconsumeTimes times, then the queue goes on in order"
    );

    // The exhausted message is in the group's DLQ.
    let dlq = format!("%DLQ%{group}");
    cluster.wait_route(&dlq).await;
    let reader = karman_client::consumer::LitePullConsumer::builder()
        .client_config(cluster.client_config("dlq"))
        .group(unique("dlq_reader"))
        .auto_commit(false)
        .build()
        .await
        .expect("lite pull consumer");
    let queue = MessageQueue::new(&dlq, cluster.broker_name(), 0);
    reader.assign(vec![queue.clone()]).await.expect("assign");
    reader.seek(&queue, 0).await.expect("seek");
    let mut dead = Vec::new();
    let deadline = tokio::time::Instant::now() + PROMPT;
    while dead.is_empty() && tokio::time::Instant::now() < deadline {
        dead = reader.poll(Duration::from_millis(500)).await;
    }
    reader.shutdown().await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].body.as_ref(), b"poison");
    assert_eq!(dead[0].properties.get("RETRY_TOPIC"), Some(topic.as_str()));
    assert_eq!(dead[0].msg_id(), poison_id, "the DLQ copy keeps the msgId");
    producer.shutdown().await;
    cluster.shutdown().await;
}
