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
    let consumer = PushConsumer::builder()
        .group("example_broadcast_group")
        .subscribe("TopicTest", "*")
        .message_model(MessageModel::Broadcasting)
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(|messages| async move {
            for m in &messages {
                println!("got {} from queue {}", m.msg_id(), m.queue_id);
            }
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }))
        .start()
        .await?;
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    consumer.shutdown().await;
    Ok(())
}
