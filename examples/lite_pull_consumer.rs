//! Lite pull: the application polls. Subscribe (with rebalance) or assign queues, poll,
//! commit by hand, seek.
//!
//! `cargo run -p karman-client --example lite_pull_consumer`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use karman_client::consumer::{ConsumeFromWhere, LitePullConsumer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let consumer = LitePullConsumer::builder()
        .group("example_lite_pull")
        .auto_commit(false)
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build()
        .await?;
    consumer.subscribe("TopicTest", "*").await?;
    // Poll until a poll comes back empty after something arrived (at most 30 s).
    let mut total = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        let messages = consumer.poll(Duration::from_secs(1)).await;
        if messages.is_empty() && total > 0 {
            break;
        }
        total += messages.len();
        for m in &messages {
            println!("{} {}@{}", m.msg_id(), m.queue_id, m.queue_offset);
        }
        consumer.commit_sync().await?;
    }
    let queues: Vec<String> = consumer
        .assignment()
        .iter()
        .map(ToString::to_string)
        .collect();
    println!("polled {total} messages from {}", queues.join(", "));
    // Read a queue again from its beginning.
    if let Some(queue) = consumer.assignment().first() {
        consumer.seek_to_begin(queue).await?;
        println!(
            "after seek: {} messages",
            consumer.poll(Duration::from_secs(1)).await.len()
        );
    }
    consumer.shutdown().await;
    Ok(())
}
