//! Sync send: wait for the broker's answer, retried on another broker within 3 s.
//!
//! `NAMESRV_ADDR=127.0.0.1:9876 cargo run -p karman-client --example producer_sync`
#![allow(clippy::print_stdout)]

use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The NameServer comes from NAMESRV_ADDR (default 127.0.0.1:9876).
    let producer = Producer::builder()
        .group("example_sync_producer")
        .build()
        .await?;
    for i in 0..10 {
        let message = Message::new("TopicTest", format!("Hello Karman {i}"))
            .with_tags("TagA")
            .with_keys([format!("order-{i}")]);
        let result = producer.send(message).await?;
        println!(
            "{:?} msgId={} offsetMsgId={} {} offset={}",
            result.status, result.msg_id, result.offset_msg_id, result.queue, result.queue_offset
        );
    }
    producer.shutdown().await;
    Ok(())
}
