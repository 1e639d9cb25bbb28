//! Transactions over TCP: half messages, END_TRANSACTION, check-back, restarts.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use karman_protocol::body::{HeartbeatData, ProducerData, fastjson};
use karman_protocol::header::{
    CheckTransactionStateRequestHeader, EndTransactionRequestHeader, SendMessageResponseHeader,
};
use karman_protocol::message::id::parse_offset_msg_id;
use karman_protocol::message::sysflag::message as sysflag;
use karman_protocol::message::{MessageExt, property};
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{
    Channel, ClientConfig, Dispatcher, ProcessResult, RemotingClient, RequestProcessor,
};
use parking_lot::Mutex;
use support::{Cluster, messages};

const GROUP: &str = "tx_producer";

fn half_props(uniq: &str) -> String {
    format!(
        "TRAN_MSG\u{1}true\u{2}PGROUP\u{1}{GROUP}\u{2}UNIQ_KEY\u{1}{uniq}\u{2}WAIT\u{1}true\u{2}"
    )
}

struct Half {
    queue_offset: i64,
    commit_log_offset: i64,
    uniq: String,
}

async fn send_half(cluster: &Cluster, uniq: &str, body: &str) -> Half {
    let response = cluster.send("Payments", 0, body, &half_props(uniq)).await;
    assert_eq!(
        response.response_code(),
        ResponseCode::Success,
        "{:?}",
        response.remark
    );
    let header: SendMessageResponseHeader = response.decode_header().unwrap();
    assert_eq!(header.transaction_id.as_deref(), Some(uniq));
    Half {
        queue_offset: header.queue_offset,
        commit_log_offset: parse_offset_msg_id(&header.msg_id).unwrap().1,
        uniq: uniq.to_owned(),
    }
}

fn end_request(half: &Half, decision: i32, from_check: bool) -> RemotingCommand {
    let header = EndTransactionRequestHeader {
        producer_group: GROUP.into(),
        tran_state_table_offset: half.queue_offset,
        commit_log_offset: half.commit_log_offset,
        commit_or_rollback: decision,
        from_transaction_check: Some(from_check),
        msg_id: half.uniq.clone(),
        transaction_id: Some(half.uniq.clone()),
        ..EndTransactionRequestHeader::default()
    };
    RemotingCommand::request_with_header(RequestCode::EndTransaction, &header).unwrap()
}

async fn visible(cluster: &Cluster) -> Vec<MessageExt> {
    let response = cluster.pull("consumer", "Payments", 0, 0, 0).await;
    if response.response_code() == ResponseCode::Success {
        messages(&response)
    } else {
        Vec::new()
    }
}

#[tokio::test]
async fn commit_makes_the_message_visible_once_and_rollback_never() {
    let cluster = Cluster::start().await;
    let committed = send_half(&cluster, "TX0000000000000000000000000000C1", "debit A").await;
    let rolled_back = send_half(&cluster, "TX0000000000000000000000000000R1", "debit B").await;
    assert!(
        visible(&cluster).await.is_empty(),
        "half messages are invisible"
    );

    let answer = cluster
        .call(end_request(
            &committed,
            sysflag::TRANSACTION_COMMIT_TYPE,
            false,
        ))
        .await;
    assert_eq!(
        answer.response_code(),
        ResponseCode::Success,
        "{:?}",
        answer.remark
    );
    let answer = cluster
        .call(end_request(
            &rolled_back,
            sysflag::TRANSACTION_ROLLBACK_TYPE,
            false,
        ))
        .await;
    assert_eq!(answer.response_code(), ResponseCode::Success);
    // a repeated commit is ignored
    cluster
        .call(end_request(
            &committed,
            sysflag::TRANSACTION_COMMIT_TYPE,
            false,
        ))
        .await;

    let got = visible(&cluster).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].body[..], b"debit A");
    assert_eq!(
        got[0].properties.uniq_key(),
        Some("TX0000000000000000000000000000C1")
    );
    assert_eq!(
        sysflag::transaction_type(got[0].sys_flag),
        sysflag::TRANSACTION_COMMIT_TYPE
    );
    assert!(
        got[0]
            .properties
            .get(property::TRANSACTION_PREPARED)
            .is_none()
    );
    assert_eq!(
        got[0].prepared_transaction_offset,
        committed.commit_log_offset
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn wrong_group_or_offset_is_refused_with_a_reason() {
    let cluster = Cluster::start().await;
    let half = send_half(&cluster, "TX0000000000000000000000000000W1", "x").await;
    let mut wrong_group = end_request(&half, sysflag::TRANSACTION_COMMIT_TYPE, false);
    wrong_group
        .ext_fields
        .insert("producerGroup".into(), "someone_else".into());
    let answer = cluster.call(wrong_group).await;
    assert_eq!(answer.response_code(), ResponseCode::SystemError);
    assert!(answer.remark.unwrap().contains("producer group wrong"));
    let moved = Half {
        queue_offset: half.queue_offset + 5,
        ..half
    };
    let answer = cluster
        .call(end_request(&moved, sysflag::TRANSACTION_COMMIT_TYPE, false))
        .await;
    assert!(answer.remark.unwrap().contains("state table offset wrong"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn restart_between_half_and_commit_loses_nothing_and_decides_once() {
    let mut cluster = Cluster::start().await;
    let half = send_half(&cluster, "TX0000000000000000000000000000S1", "survives").await;
    cluster.restart_broker(|_| {}).await;
    cluster
        .call(end_request(&half, sysflag::TRANSACTION_COMMIT_TYPE, false))
        .await;
    cluster.restart_broker(|_| {}).await;
    let answer = cluster
        .call(end_request(&half, sysflag::TRANSACTION_COMMIT_TYPE, false))
        .await;
    assert_eq!(answer.response_code(), ResponseCode::Success);
    let got = visible(&cluster).await;
    assert_eq!(got.len(), 1, "committed exactly once across restarts");
    assert_eq!(&got[0].body[..], b"survives");
    cluster.shutdown().await;
}

/// A producer that answers every check with a fixed decision.
struct Checker {
    decision: i32,
    checks: Mutex<Vec<CheckTransactionStateRequestHeader>>,
}

#[async_trait]
impl RequestProcessor for Checker {
    async fn process(&self, channel: &Channel, request: RemotingCommand) -> ProcessResult {
        let header: CheckTransactionStateRequestHeader = request.decode_header()?;
        let message = MessageExt::decode(&request.body.to_bytes())
            .map_err(karman_remoting::ProcessError::from)?;
        assert_eq!(
            message.topic, "Payments",
            "the check carries the real topic"
        );
        self.checks.lock().push(header.clone());
        if self.decision >= 0 {
            let half = Half {
                queue_offset: header.tran_state_table_offset,
                commit_log_offset: header.commit_log_offset,
                uniq: header.msg_id.clone().unwrap_or_default(),
            };
            let _ = channel
                .invoke_oneway(end_request(&half, self.decision, true))
                .await;
        }
        Ok(None)
    }
}

async fn producer_online(cluster: &Cluster, decision: i32) -> (RemotingClient, Arc<Checker>) {
    let checker = Arc::new(Checker {
        decision,
        checks: Mutex::new(Vec::new()),
    });
    let mut dispatcher = Dispatcher::new();
    dispatcher.register(&[RequestCode::CheckTransactionState], checker.clone());
    let client = RemotingClient::new(ClientConfig::default(), dispatcher);
    let heartbeat = HeartbeatData {
        client_id: "127.0.0.1@producer".into(),
        producer_data_set: vec![ProducerData {
            group_name: GROUP.into(),
        }],
        ..HeartbeatData::default()
    };
    let request =
        RemotingCommand::request(RequestCode::HeartBeat).with_body(fastjson::to_vec(&heartbeat));
    client
        .invoke(&cluster.broker_addr(), request, support::TIMEOUT)
        .await
        .unwrap();
    (client, checker)
}

fn fast_checks(config: &mut karman_broker::BrokerConfig) {
    config.transaction_check_interval_ms = 200;
    config.transaction_timeout_ms = 500;
}

#[tokio::test]
async fn unknown_transaction_is_decided_by_check_back() {
    let cluster = Cluster::start_with(fast_checks).await;
    let (_producer, checker) = producer_online(&cluster, sysflag::TRANSACTION_COMMIT_TYPE).await;
    let half = send_half(&cluster, "TX0000000000000000000000000000U1", "checked").await;
    // the local transaction said UNKNOW (sent oneway, as Java does): the broker must ask
    cluster
        .client
        .invoke_oneway(&cluster.broker_addr(), end_request(&half, 0, false))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while visible(&cluster).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "check-back never committed the transaction"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let checks = checker.checks.lock().clone();
    assert_eq!(checks[0].tran_state_table_offset, half.queue_offset);
    assert_eq!(checks[0].commit_log_offset, half.commit_log_offset);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(visible(&cluster).await.len(), 1);
    assert_eq!(
        checker.checks.lock().len(),
        1,
        "a decided transaction is not checked again"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn transaction_nobody_decides_is_moved_aside_after_the_maximum_checks() {
    let cluster = Cluster::start_with(|c| {
        fast_checks(c);
        c.transaction_check_max = 2;
    })
    .await;
    let (_producer, checker) = producer_online(&cluster, -1).await;
    send_half(&cluster, "TX0000000000000000000000000000M1", "orphan").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let moved = cluster
            .pull("ops", "TRANS_CHECK_MAX_TIME_TOPIC", 0, 0, 0)
            .await;
        if moved.response_code() == ResponseCode::Success {
            assert_eq!(&messages(&moved)[0].body[..], b"orphan");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "undecided transaction was never moved aside"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(checker.checks.lock().len(), 2);
    assert!(visible(&cluster).await.is_empty());
    cluster.shutdown().await;
}
