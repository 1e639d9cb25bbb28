//! Transactional messages: the half message is invisible until the local transaction
//! commits; if the answer is lost or UNKNOW, the broker asks `check_local_transaction`.
//!
//! `cargo run -p karman-client --example transaction_producer`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use async_trait::async_trait;
use karman_client::producer::{
    LocalTransactionState, SendResult, TransactionListener, TransactionProducer,
};
use karman_client::{Message, MessageExt};

struct OrderService;

#[async_trait]
impl TransactionListener for OrderService {
    async fn execute_local_transaction(
        &self,
        message: &Message,
        half: &SendResult,
    ) -> LocalTransactionState {
        // Write the order row in the same step in a real service.
        println!(
            "local transaction for {} ({})",
            half.msg_id,
            String::from_utf8_lossy(&message.body)
        );
        match message.properties.keys().next() {
            Some(key) if key.ends_with('0') => LocalTransactionState::RollbackMessage,
            Some(key) if key.ends_with('1') => LocalTransactionState::Unknown,
            _ => LocalTransactionState::CommitMessage,
        }
    }

    async fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState {
        // Look the order row up: it exists, so commit.
        println!("broker checks back on {}", message.msg_id());
        LocalTransactionState::CommitMessage
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = TransactionProducer::builder(OrderService)
        .group("example_tx_producer")
        .build()
        .await?;
    for i in 0..5 {
        let message =
            Message::new("TransactionTest", format!("order {i}")).with_keys([format!("order-{i}")]);
        let result = producer.send_in_transaction(message).await?;
        println!("order {i}: {:?}", result.local_state);
    }
    // Stay up long enough for the broker's check-back of the UNKNOW one.
    tokio::time::sleep(Duration::from_secs(40)).await;
    producer.shutdown().await;
    Ok(())
}
