//! Broadcasting: every consumer of the group gets every message; offsets are kept in a
//! local file (`~/.rocketmq_offsets/<clientId>/<group>/offsets.json`).
//!
//! `cargo run -p karman-client --example broadcast_consumer` (start it twice)
#![allow(clippy::print_stdout)]

use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeFromWhere, MessageModel, PushConsumer, concurrently,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<()>(1024);
    let consumer = PushConsumer::builder()
        .group("example_broadcast_group")
        .subscribe("TopicTest", "*")
        .message_model(MessageModel::Broadcasting)
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |messages| {
            let seen_tx = seen_tx.clone();
            async move {
                for m in &messages {
                    println!("got {} from queue {}", m.msg_id(), m.queue_id);
                    let _ = seen_tx.try_send(());
                }
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await?;
    // Until 3 s pass without a message (30 s for the first one) or Ctrl-C.
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
