//! SQL92 filtering over message properties. The broker needs `enablePropertyFilter=true`
//! in its broker.conf; without it the consumer fails to start with the broker's
//! SYSTEM_ERROR.
//!
//! `cargo run -p karman-client --example sql92_filter`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeFromWhere, PushConsumer, concurrently,
};
use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .group("example_sql_producer")
        .build()
        .await?;
    for (i, region) in ["eu", "us", "eu", "ap"].iter().enumerate() {
        let message = Message::new("SqlFilterTest", format!("reading {i}"))
            .with_tags("sensor")
            .with_property("region", *region)
            .with_property("level", i.to_string());
        producer.send(message).await?;
    }
    producer.shutdown().await;

    let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<()>(1024);
    let consumer = PushConsumer::builder()
        .group("example_sql_consumer")
        .subscribe_sql92("SqlFilterTest", "region = 'eu' AND level BETWEEN 0 AND 5")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |messages| {
            let seen_tx = seen_tx.clone();
            async move {
                for m in &messages {
                    println!(
                        "{} region={:?}",
                        String::from_utf8_lossy(&m.body),
                        m.properties.get("region")
                    );
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
