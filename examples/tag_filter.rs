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

    let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<()>(1024);
    let consumer = PushConsumer::builder()
        .group("example_tag_consumer")
        .subscribe("TagFilterTest", "TagA || TagC")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |messages| {
            let seen_tx = seen_tx.clone();
            async move {
                for m in &messages {
                    println!("{:?}: {}", m.tags(), String::from_utf8_lossy(&m.body));
                    let _ = seen_tx.try_send(());
                }
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await?;
    // Until 3 s pass without a message (30 s for the first one).
    let mut idle = Duration::from_secs(30);
    while tokio::time::timeout(idle, seen.recv()).await.is_ok() {
        idle = Duration::from_secs(3);
    }
    consumer.shutdown().await;
    Ok(())
}
