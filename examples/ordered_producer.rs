//! Ordered messages, producer side: every step of one order goes to the same queue
//! (hash of the sharding key), so an orderly consumer sees them in order.
//! Run `orderly_consumer` to read them back.
//!
//! `cargo run -p karman-client --example ordered_producer`
#![allow(clippy::print_stdout)]

use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .group("example_ordered_producer")
        .build()
        .await?;
    for order in 0..5 {
        for step in ["created", "paid", "shipped", "done"] {
            let key = format!("order-{order}");
            let message =
                Message::new("OrderTopic", format!("{key} {step}")).with_keys([key.as_str()]);
            let result = producer.send_ordered(message, &key).await?;
            println!("{key} {step} -> queue {}", result.queue.queue_id);
        }
    }
    producer.shutdown().await;
    Ok(())
}
