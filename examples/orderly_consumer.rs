//! Ordered messages, consumer side: an orderly listener gets each queue's messages one
//! batch at a time, in queue order, while this client holds the queue's broker lock.
//! Sends a few ordered messages first so it runs on its own.
//!
//! `cargo run -p karman-client --example orderly_consumer`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use karman_client::consumer::{ConsumeFromWhere, ConsumeOrderlyStatus, PushConsumer, orderly};
use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .group("example_orderly_feeder")
        .build()
        .await?;
    for step in ["created", "paid", "shipped", "done"] {
        producer
            .send_ordered(
                Message::new("OrderTopic", format!("order-42 {step}")),
                "order-42",
            )
            .await?;
    }
    producer.shutdown().await;

    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(16);
    let consumer = PushConsumer::builder()
        .group("example_orderly_consumer")
        .subscribe("OrderTopic", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_orderly(orderly(move |messages| {
            let done_tx = done_tx.clone();
            async move {
                for m in &messages {
                    println!(
                        "queue {} offset {}: {}",
                        m.queue_id,
                        m.queue_offset,
                        String::from_utf8_lossy(&m.body)
                    );
                    if m.body.as_ref() == b"order-42 done" {
                        let _ = done_tx.try_send(());
                    }
                }
                ConsumeOrderlyStatus::Success
            }
        }))
        .start()
        .await?;
    let _ = tokio::time::timeout(Duration::from_secs(30), done_rx.recv()).await;
    // Shutdown persists offsets and unlocks the queues for the next member.
    consumer.shutdown().await;
    Ok(())
}
