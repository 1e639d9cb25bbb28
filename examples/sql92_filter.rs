//! SQL92 filtering over message properties. The broker needs `enablePropertyFilter=true`;
//! without it the consumer fails to start with the broker's SYSTEM_ERROR.
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

    let consumer = PushConsumer::builder()
        .group("example_sql_consumer")
        .subscribe_sql92("SqlFilterTest", "region = 'eu' AND level BETWEEN 0 AND 5")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(|messages| async move {
            for m in &messages {
                println!(
                    "{} region={:?}",
                    String::from_utf8_lossy(&m.body),
                    m.properties.get("region")
                );
            }
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }))
        .start()
        .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    consumer.shutdown().await;
    Ok(())
}
