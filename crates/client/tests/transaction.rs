//! Transactional producer: half message, END_TRANSACTION with the right offsets, and a
//! broker's CHECK_TRANSACTION_STATE reaching the check listener.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use karman_client::producer::{
    LocalTransactionState, SendResult, TransactionListener, TransactionProducer,
};
use karman_client::{Message, MessageExt};
use karman_protocol::header::CheckTransactionStateRequestHeader;
use karman_protocol::message::StoredRecord;
use karman_protocol::message::id::parse_offset_msg_id;
use karman_protocol::{RemotingCommand, RequestCode};
use support::{FakeBroker, eventually, fast_client, init_tracing, start_namesrv};

struct Listener {
    local: LocalTransactionState,
    check: LocalTransactionState,
    checks: Arc<AtomicUsize>,
}

#[async_trait]
impl TransactionListener for Listener {
    async fn execute_local_transaction(
        &self,
        message: &Message,
        half: &SendResult,
    ) -> LocalTransactionState {
        assert_eq!(message.properties.get("TRAN_MSG"), Some("true"));
        assert!(!half.msg_id.is_empty());
        self.local
    }

    async fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState {
        assert_eq!(message.properties.get("PGROUP"), Some("txg"));
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.check
    }
}

#[tokio::test]
async fn commit_rollback_and_check_back() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker = FakeBroker::start(
        "broker-a",
        &namesrv.local_addr().to_string(),
        &[("Orders", 2)],
    )
    .await;
    let checks = Arc::new(AtomicUsize::new(0));
    let listener = Listener {
        local: LocalTransactionState::CommitMessage,
        check: LocalTransactionState::RollbackMessage,
        checks: checks.clone(),
    };
    let producer = TransactionProducer::builder(listener)
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("txg")
        .build()
        .await
        .unwrap();

    let result = producer
        .send_in_transaction(Message::new("Orders", "order 42").with_delay_level(3))
        .await
        .unwrap();
    assert_eq!(result.local_state, LocalTransactionState::CommitMessage);
    let half = broker.state.half.lock()[0].message.clone();
    assert_eq!(half.properties.get("PGROUP"), Some("txg"));
    assert_eq!(
        half.properties.get("DELAY"),
        None,
        "a half message carries no delay level"
    );
    assert_eq!(half.sys_flag & 0xC, 0x4, "sent with TRANSACTION_PREPARED");
    assert!(
        broker.messages("Orders").is_empty(),
        "half messages stay invisible"
    );

    eventually(Duration::from_secs(3), "END_TRANSACTION", || {
        !broker.state.end_transactions.lock().is_empty()
    })
    .await;
    let end = broker.state.end_transactions.lock()[0].clone();
    assert_eq!(end.commit_or_rollback, 8);
    assert_eq!(end.producer_group, "txg");
    assert_eq!(end.tran_state_table_offset, result.send_result.queue_offset);
    assert_eq!(
        end.commit_log_offset,
        parse_offset_msg_id(&result.send_result.offset_msg_id)
            .unwrap()
            .1
    );
    assert_eq!(end.commit_log_offset, half.commit_log_offset);
    assert_eq!(end.msg_id, result.send_result.msg_id);
    assert_eq!(end.from_transaction_check, Some(false));

    // The broker asks about the half message over the producer's own connection.
    eventually(Duration::from_secs(3), "producer heartbeat", || {
        broker.state.members.lock().producers.contains_key("txg")
    })
    .await;
    let record = {
        let mut bytes = Vec::new();
        StoredRecord {
            topic: "Orders",
            queue_id: 0,
            flag: 0,
            queue_offset: 7,
            physical_offset: 4242,
            sys_flag: 0,
            born_timestamp_ms: 1,
            born_host: "127.0.0.1:1".parse().unwrap(),
            store_timestamp_ms: 2,
            store_host: broker.state.addr,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: b"order 43",
            properties: half.properties.encode().as_bytes(),
        }
        .encode(&mut bytes)
        .unwrap();
        bytes
    };
    let header = CheckTransactionStateRequestHeader {
        topic: Some("RMQ_SYS_TRANS_HALF_TOPIC".into()),
        tran_state_table_offset: 7,
        commit_log_offset: 4242,
        msg_id: half.properties.uniq_key().map(str::to_owned),
        transaction_id: half.properties.uniq_key().map(str::to_owned),
        offset_msg_id: None,
        bname: Some("broker-a".into()),
    };
    let request = RemotingCommand::request_with_header(RequestCode::CheckTransactionState, &header)
        .unwrap()
        .with_body(record);
    assert_eq!(broker.send_to_producers("txg", request).await, 1);
    eventually(Duration::from_secs(3), "check answered", || {
        broker.state.end_transactions.lock().len() == 2
    })
    .await;
    let answer = broker.state.end_transactions.lock()[1].clone();
    assert_eq!(checks.load(Ordering::SeqCst), 1);
    assert_eq!(answer.commit_or_rollback, 12);
    assert_eq!(answer.from_transaction_check, Some(true));
    assert_eq!(
        (answer.tran_state_table_offset, answer.commit_log_offset),
        (7, 4242)
    );
    assert_eq!(answer.bname.as_deref(), Some("broker-a"));
    assert_eq!(answer.topic.as_deref(), Some("RMQ_SYS_TRANS_HALF_TOPIC"));
    assert_eq!(Some(answer.msg_id.as_str()), half.properties.uniq_key());
    producer.shutdown().await;
}

#[tokio::test]
async fn unknown_local_state_is_reported_as_not_type() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker = FakeBroker::start(
        "broker-a",
        &namesrv.local_addr().to_string(),
        &[("Orders", 1)],
    )
    .await;
    let listener = Listener {
        local: LocalTransactionState::Unknown,
        check: LocalTransactionState::Unknown,
        checks: Arc::default(),
    };
    let producer = TransactionProducer::builder(listener)
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("txg")
        .build()
        .await
        .unwrap();
    let result = producer
        .send_in_transaction(Message::new("Orders", "maybe"))
        .await
        .unwrap();
    assert_eq!(result.local_state, LocalTransactionState::Unknown);
    eventually(Duration::from_secs(3), "END_TRANSACTION", || {
        !broker.state.end_transactions.lock().is_empty()
    })
    .await;
    assert_eq!(
        broker.state.end_transactions.lock()[0].commit_or_rollback,
        0
    );
    producer.shutdown().await;
}

/// Regression: a producer that has sent nothing (a new member that only answers the
/// check-backs of halves an exited member left) must heartbeat to the brokers, or the
/// broker has no live channel of the group to check with. Java's producer counts TBW102
/// as a topic in use from its start, so it learns every broker that carries it.
#[tokio::test]
async fn a_producer_that_has_sent_nothing_heartbeats_to_the_brokers_of_tbw102() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker = FakeBroker::start(
        "broker-a",
        &namesrv.local_addr().to_string(),
        &[("TBW102", 8)],
    )
    .await;
    let listener = Listener {
        local: LocalTransactionState::CommitMessage,
        check: LocalTransactionState::CommitMessage,
        checks: Arc::default(),
    };
    let producer = TransactionProducer::builder(listener)
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("txg")
        .build()
        .await
        .unwrap();
    let has_group = || {
        broker
            .state
            .heartbeats
            .lock()
            .iter()
            .any(|h| h.producer_data_set.iter().any(|p| p.group_name == "txg"))
    };
    assert!(
        has_group(),
        "the first heartbeat, at build, names the group"
    );
    producer.shutdown().await;
}
