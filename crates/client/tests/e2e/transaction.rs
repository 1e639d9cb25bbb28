//! Transactions with karman-client's `TransactionProducer` against the real broker: a
//! commit is consumed once, a rollback never; UNKNOW followed by a check-back answered
//! COMMIT is consumed once; when the producer that sent a half message exits, a new
//! producer of the same group answers the check.
//!
//! The broker's check runs every 300 ms for halves older than 1 s (Java: 30 s and 6 s).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use karman_client::producer::{
    LocalTransactionState, ProducerConfig, SendResult, TransactionListener, TransactionProducer,
};
use karman_client::{Message, MessageExt};
use parking_lot::Mutex;

use crate::harness::{Cluster, Collector, PROMPT, counts, eventually, unique};

const CHECK_INTERVAL_MS: u64 = 300;
const TRANSACTION_TIMEOUT_MS: u64 = 1_000;

fn fast_checks(config: &mut karman_broker::BrokerConfig) {
    config.transaction_check_interval_ms = CHECK_INTERVAL_MS;
    config.transaction_timeout_ms = TRANSACTION_TIMEOUT_MS;
}

/// Decides by body ("commit", "rollback", anything else UNKNOW) and answers every check
/// with `on_check`, recording the checked bodies.
struct Listener {
    on_check: LocalTransactionState,
    checked: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl TransactionListener for Listener {
    async fn execute_local_transaction(
        &self,
        message: &Message,
        _half: &SendResult,
    ) -> LocalTransactionState {
        match message.body.as_ref() {
            b"commit" => LocalTransactionState::CommitMessage,
            b"rollback" => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    async fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState {
        self.checked
            .lock()
            .push(String::from_utf8_lossy(&message.body).into_owned());
        self.on_check
    }
}

async fn transaction_producer(
    cluster: &Cluster,
    group: &str,
    instance: &str,
    on_check: LocalTransactionState,
) -> (TransactionProducer, Arc<Mutex<Vec<String>>>) {
    let checked = Arc::new(Mutex::new(Vec::new()));
    let producer = TransactionProducer::builder(Listener {
        on_check,
        checked: checked.clone(),
    })
    .client_config(cluster.client_config(instance))
    .producer_config(ProducerConfig {
        group: group.to_owned(),
        send_timeout: Duration::from_secs(10),
        ..ProducerConfig::default()
    })
    .build()
    .await
    .expect("transaction producer starts");
    (producer, checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_is_consumed_once_rollback_never_and_unknown_is_settled_by_the_check() {
    let cluster = Cluster::start_with("tx", fast_checks).await;
    let topic = unique("TxTopic");
    cluster.create_topic(&topic, 2).await;
    let collector = Collector::new();
    let consumer = cluster
        .recording_consumer(&unique("tx_cg"), "c", &topic, "*", &collector, |b| b)
        .await;
    let group = unique("tx_pg");
    let (producer, checked) =
        transaction_producer(&cluster, &group, "tx", LocalTransactionState::CommitMessage).await;

    let mut ids = BTreeMap::new();
    for body in ["commit", "rollback", "unknown"] {
        let result = producer
            .send_in_transaction(Message::new(&topic, body).with_tags("Tx"))
            .await
            .expect("send in transaction");
        ids.insert(body, result.send_result.msg_id.clone());
        let want = match body {
            "commit" => LocalTransactionState::CommitMessage,
            "rollback" => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        };
        assert_eq!(result.local_state, want);
    }
    let arrived = collector
        .wait_until(PROMPT, |all| {
            ["commit", "unknown"]
                .iter()
                .all(|b| all.iter().any(|r| r.body == *b))
        })
        .await;
    // Let several more check rounds pass: nothing else may arrive, nothing twice.
    tokio::time::sleep(Duration::from_millis(
        TRANSACTION_TIMEOUT_MS + 5 * CHECK_INTERVAL_MS,
    ))
    .await;
    let received = collector.all();
    consumer.shutdown().await;
    assert!(
        arrived,
        "committed transactions not delivered: {received:#?}"
    );
    assert_eq!(
        counts(received.iter().map(|r| r.body.as_str())),
        BTreeMap::from([("commit", 1), ("unknown", 1)]),
        "commit once, the checked UNKNOW once, rollback never"
    );
    for r in &received {
        assert_eq!(
            r.msg_id,
            ids[r.body.as_str()],
            "the msgId survives the commit"
        );
        assert_eq!(r.topic, topic);
        assert!(
            !r.properties.contains_key("TRAN_MSG"),
            "a committed message is not a half any more: {r:?}"
        );
    }
    let checked = checked.lock().clone();
    assert!(
        !checked.is_empty() && checked.iter().all(|b| b == "unknown"),
        "only the UNKNOW transaction is checked: {checked:?}"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_producer_of_the_group_answers_the_check_after_the_first_exits() {
    let cluster = Cluster::start_with("txfailover", fast_checks).await;
    let topic = unique("TxFailoverTopic");
    cluster.create_topic(&topic, 1).await;
    let group = unique("txf_pg");
    let collector = Collector::new();
    let consumer = cluster
        .recording_consumer(&unique("txf_cg"), "c", &topic, "*", &collector, |b| b)
        .await;

    // The first producer never decides: it answers its own checks UNKNOW, then exits.
    let (first, first_checked) =
        transaction_producer(&cluster, &group, "first", LocalTransactionState::Unknown).await;
    let half = first
        .send_in_transaction(Message::new(&topic, "orphan").with_tags("Tx"))
        .await
        .expect("send in transaction");
    assert_eq!(half.local_state, LocalTransactionState::Unknown);
    first.shutdown().await;
    let first_checks = first_checked.lock().len();

    // A new member of the group (another process, as after a restart) commits on check.
    let (second, second_checked) = transaction_producer(
        &cluster,
        &group,
        "second",
        LocalTransactionState::CommitMessage,
    )
    .await;
    eventually(PROMPT, "the second producer is asked", || {
        !second_checked.lock().is_empty()
    })
    .await;
    assert!(
        collector.wait_count(1, PROMPT).await,
        "the transaction committed on check is delivered"
    );
    tokio::time::sleep(Duration::from_millis(
        TRANSACTION_TIMEOUT_MS + 5 * CHECK_INTERVAL_MS,
    ))
    .await;
    let received = collector.all();
    consumer.shutdown().await;
    assert_eq!(
        received.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(),
        ["orphan"],
        "delivered once"
    );
    assert_eq!(received[0].msg_id, half.send_result.msg_id);
    assert_eq!(
        first_checked.lock().len(),
        first_checks,
        "an exited producer is never asked"
    );
    assert!(
        second_checked.lock().iter().all(|b| b == "orphan"),
        "{:?}",
        second_checked.lock()
    );
    second.shutdown().await;
    cluster.shutdown().await;
}
