//! Batch send: many small messages of one topic in few requests, split at 4 MiB.
//!
//! `cargo run -p karman-client --example batch_producer`
#![allow(clippy::print_stdout)]

use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .group("example_batch_producer")
        .build()
        .await?;
    let messages: Vec<Message> = (0..1000)
        .map(|i| Message::new("BatchTest", format!("batch item {i}")).with_tags("TagA"))
        .collect();
    for result in producer.send_batch(messages).await? {
        let count = result.msg_id.split(',').count();
        println!(
            "{count} messages stored in {} from offset {}",
            result.queue, result.queue_offset
        );
    }
    producer.shutdown().await;
    Ok(())
}
