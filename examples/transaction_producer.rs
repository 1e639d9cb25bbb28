//! Transactional messages: the half message is invisible until the local transaction
//! commits; if the answer is lost or UNKNOW, the broker asks `check_local_transaction`
//! (after `transactionTimeOut`, every `transactionCheckInterval`: 6 s and 30 s by
//! default, set in broker.conf).
//!
//! `cargo run -p karman-client --example transaction_producer`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use async_trait::async_trait;
use karman_client::producer::{
    LocalTransactionState, SendResult, TransactionListener, TransactionProducer,
};
use karman_client::{Message, MessageExt};
use tokio::sync::mpsc;

struct OrderService {
    checked: mpsc::Sender<String>,
}

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
            Some("order-0") => LocalTransactionState::RollbackMessage,
            Some("order-1") => LocalTransactionState::Unknown,
            _ => LocalTransactionState::CommitMessage,
        }
    }

    async fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState {
        // Look the order row up: it exists, so commit.
        println!(
            "broker checks back on {} ({})",
            message.msg_id(),
            String::from_utf8_lossy(&message.body)
        );
        let _ = self.checked.try_send(message.msg_id());
        LocalTransactionState::CommitMessage
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (checked, mut checks) = mpsc::channel(16);
    let producer = TransactionProducer::builder(OrderService { checked })
        .group("example_tx_producer")
        .build()
        .await?;
    for i in 0..5 {
        let message =
            Message::new("TransactionTest", format!("order {i}")).with_keys([format!("order-{i}")]);
        let result = producer.send_in_transaction(message).await?;
        println!("order {i}: {:?}", result.local_state);
    }
    // Stay up for the broker's check-back of the UNKNOW one (at most a minute), then give
    // the answer a moment to go out.
    if tokio::time::timeout(Duration::from_secs(60), checks.recv())
        .await
        .is_ok()
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    producer.shutdown().await;
    Ok(())
}
