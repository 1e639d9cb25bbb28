//! Push consumer, clustering: the group shares the queues; the listener returns
//! `ReconsumeLater` to have a message redelivered later through the retry topic.
//!
//! `cargo run -p karman-client --example push_consumer`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeFromWhere, PushConsumer, concurrently,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let consumer = PushConsumer::builder()
        .group("example_consumer_group")
        .subscribe("TopicTest", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(|messages| async move {
            for m in &messages {
                println!(
                    "{} {} {}",
                    m.msg_id(),
                    m.topic,
                    String::from_utf8_lossy(&m.body)
                );
            }
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }))
        .start()
        .await?;
    // Consume for 30 s (or until Ctrl-C), then persist offsets and leave the group.
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    consumer.shutdown().await;
    Ok(())
}
