//! Messages sent with a queue selector by order id and consumed by an orderly listener
//! arrive in send order for every order id.

use std::collections::BTreeMap;

use karman_interop_tests::{Cluster, Collector, PROMPT, unique};
use rocketmq_client_rust::{ConsumeOrderlyContext, ConsumeOrderlyStatus, MQPushConsumer};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;

use super::{message, producer, push_consumer_builder};

const QUEUES: i32 = 4;
const ORDERS: i32 = 10;
const STEPS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_by_order_id_and_orderly_listener_keep_send_order_per_order_id() {
    let cluster = Cluster::start("order").await;
    let topic = unique("OrderTopic");
    cluster.create_topic_with(&topic, QUEUES, true).await;

    let collector = Collector::new();
    let mut consumer = push_consumer_builder(&cluster, &unique("order_cg"), "orderly").build();
    consumer
        .subscribe(topic.clone(), "*")
        .await
        .expect("subscribe");
    let seen = collector.clone();
    consumer.register_message_listener_orderly(
        move |msgs: &[&MessageExt], _ctx: &mut ConsumeOrderlyContext| {
            for msg in msgs {
                seen.record("orderly", msg);
            }
            Ok(ConsumeOrderlyStatus::Success)
        },
    );
    consumer.start().await.expect("orderly consumer starts");
    assert!(consumer.is_consume_orderly());

    let producer = producer(&cluster, &unique("order_pg")).await;
    // Interleave the orders: step s of every order, then step s + 1, ...
    let selector = |queues: &[MessageQueue], _msg: &Message, order_id: &i32| {
        let n = i32::try_from(queues.len()).expect("queue count fits i32");
        queues
            .get(usize::try_from(order_id.rem_euclid(n)).ok()?)
            .cloned()
    };
    let mut queue_of = BTreeMap::new();
    for step in 0..STEPS {
        for order in 0..ORDERS {
            let body = format!("order-{order}-step-{step}");
            let result = producer
                .send_with_selector(message(&topic, "O", &body), selector, order)
                .await
                .expect("ordered send")
                .expect("send result");
            let queue_id = result.message_queue.as_ref().expect("queue").queue_id();
            assert_eq!(
                queue_id,
                order % QUEUES,
                "the broker stores in the selected queue"
            );
            queue_of.insert(order, queue_id);
        }
    }

    let total = usize::try_from(ORDERS).unwrap() * STEPS;
    let done = collector.wait_count(total, PROMPT).await;
    let received = collector.all();
    consumer.shutdown().await;
    assert!(
        done,
        "orderly delivery incomplete: {} of {total}",
        received.len()
    );
    for order in 0..ORDERS {
        let prefix = format!("order-{order}-");
        let got: Vec<&str> = received
            .iter()
            .filter(|r| r.body.starts_with(&prefix))
            .map(|r| r.body.as_str())
            .collect();
        let want: Vec<String> = (0..STEPS)
            .map(|s| format!("order-{order}-step-{s}"))
            .collect();
        assert_eq!(got, want, "order {order} out of send order");
        assert!(
            received
                .iter()
                .filter(|r| r.body.starts_with(&prefix))
                .all(|r| r.queue_id == queue_of[&order]),
            "order {order} came from one queue"
        );
    }
    assert_eq!(received.len(), total, "no duplicates");
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}
