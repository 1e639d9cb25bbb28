//! Oneway send: fire and forget, no answer and no retry (logs, metrics).
//!
//! `cargo run -p karman-client --example producer_oneway`
#![allow(clippy::print_stdout)]

use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .group("example_oneway_producer")
        .build()
        .await?;
    for i in 0..10 {
        producer
            .send_oneway(Message::new("TopicTest", format!("log line {i}")))
            .await?;
    }
    println!("10 oneway messages handed to the broker");
    // shutdown waits for nothing here, but keeps the connection until the writes are out.
    producer.shutdown().await;
    Ok(())
}
