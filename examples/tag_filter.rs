//! Tag filtering: subscribe with `TagA || TagC`; the broker filters by tag hash and the
//! client re-checks the tag string.
//!
//! `cargo run -p karman-client --example tag_filter`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeFromWhere, PushConsumer, concurrently,
};
use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .group("example_tag_producer")
        .build()
        .await?;
    for tag in ["TagA", "TagB", "TagC"] {
        producer
            .send(Message::new("TagFilterTest", format!("tagged {tag}")).with_tags(tag))
            .await?;
    }
    producer.shutdown().await;

    let consumer = PushConsumer::builder()
        .group("example_tag_consumer")
        .subscribe("TagFilterTest", "TagA || TagC")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(|messages| async move {
            for m in &messages {
                println!("{:?}: {}", m.tags(), String::from_utf8_lossy(&m.body));
            }
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }))
        .start()
        .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    consumer.shutdown().await;
    Ok(())
}
