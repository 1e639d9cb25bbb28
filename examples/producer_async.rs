//! Async send: `send_async` returns as soon as the send is under way; await the handle
//! (here all of them at once) for the results.
//!
//! `cargo run -p karman-client --example producer_async`
#![allow(clippy::print_stdout)]

use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .group("example_async_producer")
        .build()
        .await?;
    let mut handles = Vec::new();
    for i in 0..100 {
        handles.push(
            producer
                .send_async(Message::new("TopicTest", format!("async {i}")))
                .await?,
        );
    }
    for handle in handles {
        match handle.await {
            Ok(result) => println!("sent {} to {}", result.msg_id, result.queue),
            Err(error) => println!("failed: {error}"),
        }
    }
    producer.shutdown().await;
    Ok(())
}
