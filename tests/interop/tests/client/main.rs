//! `rocketmq-client-rust` 1.0.0, unchanged, against a Karman NameServer and broker.
//!
//! One test binary (the client is heavy to link); one module per "Done when" bullet of the
//! broker issue. Every test starts its own cluster (see `karman_interop_tests::Cluster`).

mod clustering;
mod cross;
mod delay;
mod filter;
mod malformed;
mod order;
mod pull;
mod query;
mod retry;
mod send;
mod transaction;

use std::sync::Arc;
use std::time::Duration;

use karman_interop_tests::{Cluster, Collector, client_runtime, unique};
use rocketmq_client_rust::{
    ClientConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, DefaultMQProducer,
    DefaultMQPushConsumer, DefaultMQPushConsumerBuilder, MQPushConsumer,
};
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;

/// A started producer of a fresh group, pointed at the cluster.
pub async fn producer(cluster: &Cluster, group: &str) -> DefaultMQProducer {
    let mut producer = DefaultMQProducer::builder(client_runtime(group))
        .client_config(client_config(cluster, group))
        .producer_group(group.to_owned())
        .send_msg_timeout(10_000)
        .build();
    producer.start().await.expect("producer starts");
    producer
}

/// Client settings naming the cluster's NameServer and a distinct instance name, so that
/// several clients in this process get distinct client ids (as separate processes would).
pub fn client_config(cluster: &Cluster, instance: &str) -> ClientConfig {
    ClientConfig::builder()
        .namesrv_addr(cluster.namesrv_addr().to_owned())
        .instance_name(unique(instance))
        .build()
        .expect("client config")
}

/// A push consumer builder with the settings every test shares: one message per listener
/// call, and the client's default CONSUME_FROM_LAST_OFFSET, as a stock user has it. A new
/// group still sees messages sent before it started: for a young queue the broker answers
/// QUERY_CONSUMER_OFFSET with 0 (spec semantics.md §7.3).
pub fn push_consumer_builder(
    cluster: &Cluster,
    group: &str,
    instance: &str,
) -> DefaultMQPushConsumerBuilder {
    DefaultMQPushConsumer::builder(client_runtime(group))
        .client_config(client_config(cluster, instance))
        .consumer_group(group.to_owned())
        .consume_message_batch_max_size(1)
        .consume_thread_min(1)
        .consume_thread_max(4)
}

/// A new topic of `queues` queues and a started consumer (group `<group_prefix>…`,
/// label "c") recording every message sent to it.
pub async fn topic_with_recorder(
    cluster: &Cluster,
    topic_prefix: &str,
    queues: i32,
    group_prefix: &str,
) -> (String, Collector, DefaultMQPushConsumer) {
    let topic = unique(topic_prefix);
    cluster.create_topic(&topic, queues).await;
    let collector = Collector::new();
    let consumer = recording_consumer(
        cluster,
        &unique(group_prefix),
        "c",
        &topic,
        "*",
        &collector,
        |b| b,
    )
    .await;
    (topic, collector, consumer)
}

/// A started concurrent push consumer that records every delivery into `collector` under
/// `label` and always answers CONSUME_SUCCESS.
pub async fn recording_consumer(
    cluster: &Cluster,
    group: &str,
    label: &str,
    topic: &str,
    expression: &str,
    collector: &Collector,
    tweak: impl FnOnce(DefaultMQPushConsumerBuilder) -> DefaultMQPushConsumerBuilder,
) -> DefaultMQPushConsumer {
    let mut consumer = tweak(push_consumer_builder(cluster, group, label)).build();
    consumer
        .subscribe(topic.to_owned(), expression.to_owned())
        .await
        .expect("subscribe");
    let collector = collector.clone();
    let label = label.to_owned();
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            for msg in msgs {
                collector.record(&label, msg);
            }
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    consumer.start().await.expect("push consumer starts");
    consumer
}

pub fn message(topic: &str, tag: &str, body: &str) -> Message {
    Message::builder()
        .topic(topic)
        .tags(tag)
        .body_slice(body.as_bytes())
        .build_unchecked()
}

/// Runs `future` under a deadline with a message naming what timed out.
pub async fn within<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}

/// Shared cell for listener outcomes.
pub type Shared<T> = Arc<parking_lot::Mutex<T>>;
