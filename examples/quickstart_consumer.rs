//! The README's consumer: consumes until Ctrl-C (`cargo run -p karman-client --example
//! quickstart_consumer`). README.md shows the code below verbatim; a test checks it.
#![allow(clippy::print_stdout)]

use karman_client::consumer::{ConsumeConcurrentlyStatus, PushConsumer, concurrently};

#[tokio::main]
async fn main() -> Result<(), karman_client::ClientError> {
    let consumer = PushConsumer::builder()
        .group("my_consumer")
        .subscribe("TopicTest", "TagA || TagB")
        .listener_concurrently(concurrently(|messages| async move {
            for m in &messages {
                println!("{}: {}", m.msg_id(), String::from_utf8_lossy(&m.body));
            }
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }))
        .start()
        .await?;
    tokio::signal::ctrl_c().await.ok();
    consumer.shutdown().await; // persists offsets, unlocks orderly queues
    Ok(())
}
