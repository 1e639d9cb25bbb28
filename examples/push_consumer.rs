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
    let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<()>(1024);
    let consumer = PushConsumer::builder()
        .group("example_consumer_group")
        .subscribe("TopicTest", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |messages| {
            let seen_tx = seen_tx.clone();
            async move {
                for m in &messages {
                    println!(
                        "{} {} {}",
                        m.msg_id(),
                        m.topic,
                        String::from_utf8_lossy(&m.body)
                    );
                    let _ = seen_tx.try_send(());
                }
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await?;
    // Consume until 3 s pass without a message (30 s for the first one) or Ctrl-C, then
    // persist offsets and leave the group.
    let mut idle = Duration::from_secs(30);
    loop {
        tokio::select! {
            got = tokio::time::timeout(idle, seen.recv()) => if got.is_err() { break },
            _ = tokio::signal::ctrl_c() => break,
        }
        idle = Duration::from_secs(3);
    }
    consumer.shutdown().await;
    Ok(())
}
