//! Exactly-once effects on an at-least-once system: the listener is wrapped so a message
//! (by UNIQ_KEY here; a business key works too) is processed once even when redelivered.
//!
//! `cargo run -p karman-client --example idempotent_consumer`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeFromWhere, PushConsumer, concurrently,
};
use karman_client::idempotent::{DedupKey, IdempotentListener, MemoryIdempotenceStore};
use karman_client::{Message, Producer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Send the same payment twice, as a producer retry after a lost answer would.
    let producer = Producer::builder()
        .group("example_idem_producer")
        .build()
        .await?;
    let payment = Message::new("PaymentTopic", "pay 10 EUR").with_keys(["payment-7"]);
    producer.send(payment.clone()).await?;
    producer.send(payment).await?;
    producer.shutdown().await;

    let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<()>(1024);
    let charge = concurrently(move |messages| {
        let seen_tx = seen_tx.clone();
        async move {
            for m in &messages {
                println!("charging once for {:?}", m.keys().next());
                let _ = seen_tx.try_send(());
            }
            ConsumeConcurrentlyStatus::ConsumeSuccess
        }
    });
    let listener = IdempotentListener::new(
        charge,
        MemoryIdempotenceStore::new(100_000),
        DedupKey::business(|m| m.keys().next().map(str::to_owned)),
    );
    let consumer = PushConsumer::builder()
        .group("example_idem_consumer")
        .subscribe("PaymentTopic", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(listener)
        .start()
        .await?;
    // Until 3 s pass without a charge (30 s for the first one).
    let mut idle = Duration::from_secs(30);
    while tokio::time::timeout(idle, seen.recv()).await.is_ok() {
        idle = Duration::from_secs(3);
    }
    consumer.shutdown().await;
    Ok(())
}
