//! Transactional messages: `rocketmq-client-rust`'s `TransactionMQProducer` sends half
//! messages and decides them (at once, or when the broker checks back), a push consumer
//! sees exactly the committed ones, once each. The broker checks back fast here
//! (`transactionCheckInterval` 200 ms, `transactionTimeOut` 500 ms unless a test says
//! otherwise) so that "never" and "eventually" fit in seconds.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cheetah_string::CheetahString;
use karman_broker::BrokerConfig;
use karman_interop_tests::{
    Cluster, ClusterOptions, Collector, PROMPT, Received, client_runtime, counts,
};
use karman_interop_tests::{error_chain, unique};
use rocketmq_client_rust::{
    LocalTransactionState, TransactionListener, TransactionMQProducer, TransactionSendResult,
};
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::result::SendStatus;
use tokio::time::Instant;

use super::{Shared, client_config, message, topic_with_recorder, within};

use LocalTransactionState::{CommitMessage as Commit, RollbackMessage as Rollback, Unknown};

const CHECK_INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 500;

/// Check-back every 200 ms for halves older than 500 ms. 100 checks (20 s of rounds)
/// before a half is given up, so a producer that is away for a while (between two
/// processes, across a broker restart) still gets asked.
fn fast_checks(config: &mut BrokerConfig) {
    config.transaction_check_interval_ms = CHECK_INTERVAL_MS;
    config.transaction_timeout_ms = TIMEOUT_MS;
    config.transaction_check_max = 100;
}

fn fast_options() -> ClusterOptions {
    ClusterOptions {
        broker: fast_checks,
        ..ClusterOptions::default()
    }
}

/// Long enough after a decision for the check-back to have acted on anything still
/// undecided (transaction timeout plus five rounds), and for a push consumer to have
/// pulled whatever became visible.
const SETTLE: Duration = Duration::from_millis(TIMEOUT_MS + 5 * CHECK_INTERVAL_MS);

/// What a listener call saw of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    body: String,
    /// `UNIQ_KEY`, which Java's `getTransactionId()` / `getMsgId()` return.
    msg_id: String,
    topic: String,
    queue_id: Option<i32>,
    group: Option<String>,
    at: Instant,
}

impl Seen {
    fn of(msg: &dyn MessageTrait, queue_id: Option<i32>) -> Self {
        let property = |key: &'static str| {
            msg.property(&CheetahString::from_static_str(key))
                .map(|v| v.to_string())
        };
        Self {
            body: msg
                .get_body()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
            msg_id: property("UNIQ_KEY").unwrap_or_default(),
            topic: msg.topic().to_string(),
            queue_id,
            group: property("PGROUP"),
            at: Instant::now(),
        }
    }
}

/// A transaction listener built from two functions of what it is asked about, recording
/// every call.
struct Listener<E, C> {
    execute: E,
    check: C,
    executed: Shared<Vec<Seen>>,
    checked: Shared<Vec<Seen>>,
}

impl<E, C> TransactionListener for Listener<E, C>
where
    E: Fn(&Seen) -> LocalTransactionState + Send + Sync + 'static,
    C: Fn(&Seen) -> LocalTransactionState + Send + Sync + 'static,
{
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _arg: Option<&(dyn Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let seen = Seen::of(msg, None);
        self.executed.lock().push(seen.clone());
        (self.execute)(&seen)
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let seen = Seen::of(msg, Some(msg.queue_id()));
        self.checked.lock().push(seen.clone());
        (self.check)(&seen)
    }
}

/// The calls a producer's listener got.
#[derive(Debug, Clone, Default)]
struct Calls {
    executed: Shared<Vec<Seen>>,
    checked: Shared<Vec<Seen>>,
}

impl Calls {
    fn checks_of(&self, body: &str) -> Vec<Seen> {
        self.checked
            .lock()
            .iter()
            .filter(|s| s.body == body)
            .cloned()
            .collect()
    }
}

/// A started transactional producer of `group` for `topic` whose listener answers with
/// `execute` and `check`.
///
/// It names `topic` up front (`topics`, Java's `setTopics`): the client then fetches the
/// route at start and heartbeats to the broker, which can only check back with producers
/// it has heard from. Without it a producer that has not sent yet stays unknown to the
/// broker (see README, "What to know"). Besides the heartbeat the client sends whenever
/// it opens a connection to a broker, it heartbeats every 10 s (the client's minimum), so
/// a restarted broker learns of it soon even if it sends nothing.
async fn tx_producer(
    cluster: &Cluster,
    group: &str,
    topic: &str,
    execute: impl Fn(&Seen) -> LocalTransactionState + Send + Sync + 'static,
    check: impl Fn(&Seen) -> LocalTransactionState + Send + Sync + 'static,
) -> (TransactionMQProducer, Calls) {
    let calls = Calls::default();
    let mut config = client_config(cluster, group);
    config.set_heartbeat_broker_interval(10_000);
    let mut producer = TransactionMQProducer::builder(client_runtime(group))
        .client_config(config)
        .producer_group(group.to_owned())
        .topics(vec![topic.to_owned()])
        .send_msg_timeout(10_000)
        .check_thread_pool_min_size(1)
        .check_thread_pool_max_size(4)
        .transaction_listener(Listener {
            execute,
            check,
            executed: calls.executed.clone(),
            checked: calls.checked.clone(),
        })
        .build();
    producer
        .start()
        .await
        .unwrap_or_else(|e| panic!("transactional producer starts: {}", error_chain(&e)));
    (producer, calls)
}

async fn send_tx(
    producer: &TransactionMQProducer,
    topic: &str,
    body: &str,
) -> TransactionSendResult {
    let result = producer
        .send_message_in_transaction::<(), _>(message(topic, "Tx", body), None)
        .await
        .unwrap_or_else(|e| panic!("half message {body}: {}", error_chain(&e)));
    let send = result.send_result.as_ref().expect("a send result");
    assert_eq!(send.send_status, SendStatus::SendOk, "{send:?}");
    result
}

fn msg_id(result: &TransactionSendResult) -> String {
    result
        .send_result
        .as_ref()
        .and_then(|s| s.msg_id.clone())
        .expect("msgId")
        .to_string()
}

fn queue_id(result: &TransactionSendResult) -> i32 {
    result
        .send_result
        .as_ref()
        .and_then(|s| s.message_queue.as_ref())
        .expect("the queue the half was sent for")
        .queue_id()
}

/// Messages stored in `topic`'s queues (sum of the max offsets), as the broker counts them.
fn stored_in(cluster: &Cluster, topic: &str, queues: i32) -> i64 {
    (0..queues)
        .map(|q| cluster.broker().store().max_offset_in_queue(topic, q).0)
        .sum()
}

/// The broker's transaction counters from GET_BROKER_RUNTIME_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TxCounters {
    pending: i64,
    commits: i64,
    rollbacks: i64,
    checks: i64,
    discarded: i64,
}

async fn tx_counters(cluster: &Cluster) -> TxCounters {
    let info = cluster.broker_runtime_info().await;
    let get = |key: &str| -> i64 {
        info.get(key)
            .unwrap_or_else(|| panic!("runtime info has no {key}: {info:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("{key}: {e}"))
    };
    TxCounters {
        pending: get("transactionHalfPending"),
        commits: get("transactionCommitTotal"),
        rollbacks: get("transactionRollbackTotal"),
        checks: get("transactionCheckTotal"),
        discarded: get("transactionDiscardTotal"),
    }
}

/// Waits until the broker has no undecided half left.
async fn wait_all_decided(cluster: &Cluster, within: Duration) -> TxCounters {
    let deadline = Instant::now() + within;
    loop {
        let counters = tx_counters(cluster).await;
        if counters.pending == 0 {
            return counters;
        }
        assert!(
            Instant::now() < deadline,
            "halves still undecided after {within:?}: {counters:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_is_consumed_once_and_rollback_never() {
    // A longer transaction timeout than the other tests: the checker below would commit
    // anything it is asked about, so the local decisions must reach the broker before the
    // first possible check even on a loaded machine.
    let cluster = Cluster::start_with(
        "tx-commit",
        ClusterOptions {
            broker: |c| {
                fast_checks(c);
                c.transaction_timeout_ms = 2_000;
            },
            ..ClusterOptions::default()
        },
    )
    .await;
    let (topic, collector, mut consumer) =
        topic_with_recorder(&cluster, "TxTopic", 2, "tx_cg").await;
    // The local transaction decides at once. A check-back would get COMMIT for anything:
    // were the broker to lose the rollback and ask, the rolled-back message would show.
    let (mut producer, calls) = tx_producer(
        &cluster,
        &unique("tx_pg"),
        &topic,
        |seen| {
            if seen.body == "rollback" {
                Rollback
            } else {
                Commit
            }
        },
        |_| Commit,
    )
    .await;

    let committed = send_tx(&producer, &topic, "commit").await;
    assert_eq!(committed.local_transaction_state, Some(Commit));
    let rolled_back = send_tx(&producer, &topic, "rollback").await;
    assert_eq!(rolled_back.local_transaction_state, Some(Rollback));
    let decided_at = Instant::now();

    assert!(
        collector.wait_count(1, PROMPT).await,
        "the committed message never arrived"
    );
    // "Never" for the rollback: past the transaction timeout plus several check rounds.
    let wait =
        Duration::from_millis(2_000 + 5 * CHECK_INTERVAL_MS).saturating_sub(decided_at.elapsed());
    assert!(
        !collector.wait_until(wait, |all| all.len() > 1).await,
        "more than the committed message was consumed: {:?}",
        collector.bodies()
    );
    let all = collector.all();
    assert_eq!(all.len(), 1, "{all:?}");
    let got = &all[0];
    assert_eq!(got.body, "commit");
    assert_eq!(
        got.msg_id,
        msg_id(&committed),
        "UNIQ_KEY survives the commit"
    );
    assert_eq!(got.topic, topic);
    assert_eq!(
        got.queue_id,
        queue_id(&committed),
        "the queue the client chose"
    );
    assert_eq!(got.reconsume_times, 0);
    assert_eq!(got.property("TRAN_MSG"), None, "{:?}", got.properties);
    assert!(
        calls.checked.lock().is_empty(),
        "{:?}",
        calls.checked.lock()
    );
    assert_eq!(
        stored_in(&cluster, &topic, 2),
        1,
        "only the commit is stored"
    );
    assert_eq!(
        tx_counters(&cluster).await,
        TxCounters {
            pending: 0,
            commits: 1,
            rollbacks: 1,
            checks: 0,
            discarded: 0
        }
    );
    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.shutdown().await;
}

/// Waits for the one delivery of a transaction settled by a check-back, then makes sure no
/// second one follows while further checks could still run.
async fn consumed_once(collector: &Collector, never: &str, calls: &Calls) -> Vec<Received> {
    assert!(
        collector.wait_count(1, PROMPT).await,
        "{never}; checks: {:?}",
        calls.checked.lock()
    );
    assert!(
        !collector.wait_until(SETTLE, |all| all.len() > 1).await,
        "consumed more than once: {:?}",
        collector.all()
    );
    let all = collector.all();
    assert_eq!(all.len(), 1);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_then_check_commit_is_consumed_once() {
    let cluster = Cluster::start_with("tx-check", fast_options()).await;
    let (topic, collector, mut consumer) =
        topic_with_recorder(&cluster, "TxTopic", 2, "tx_cg").await;
    let group = unique("tx_pg");
    let (mut producer, calls) =
        tx_producer(&cluster, &group, &topic, |_| Unknown, |_| Commit).await;

    let sent_at = Instant::now();
    let result = send_tx(&producer, &topic, "checked").await;
    assert_eq!(result.local_transaction_state, Some(Unknown));
    let all = consumed_once(
        &collector,
        "the check-back never committed the transaction",
        &calls,
    )
    .await;
    assert_eq!(all[0].body, "checked");
    assert_eq!(all[0].msg_id, msg_id(&result));
    assert_eq!(all[0].queue_id, queue_id(&result));

    // The check carried the message as the producer sent it: real topic and queue, body,
    // UNIQ_KEY and producer group; and it came no earlier than the transaction timeout.
    let checks = calls.checks_of("checked");
    assert!(!checks.is_empty());
    let first = &checks[0];
    assert_eq!(first.topic, topic);
    assert_eq!(first.queue_id, Some(queue_id(&result)));
    assert_eq!(first.msg_id, msg_id(&result));
    assert_eq!(first.group.as_deref(), Some(group.as_str()));
    assert!(
        first.at.duration_since(sent_at) >= Duration::from_millis(TIMEOUT_MS),
        "checked {:?} after the send",
        first.at.duration_since(sent_at)
    );
    let counters = wait_all_decided(&cluster, PROMPT).await;
    assert_eq!(
        (counters.commits, counters.rollbacks),
        (1, 0),
        "{counters:?}"
    );
    assert_eq!(counters.discarded, 0);
    assert_eq!(
        usize::try_from(counters.checks).unwrap(),
        checks.len(),
        "every check the broker sent reached the listener"
    );
    assert_eq!(stored_in(&cluster, &topic, 2), 1);
    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.shutdown().await;
}

/// The first producer, as a process of its own: it sends the half, answers UNKNOW and
/// exits. Returns its `msgId=` value.
async fn orphan_half(cluster: &Cluster, group: &str, topic: &str, body: &str) -> String {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_karman-interop-orphan-half"))
        .args([cluster.namesrv_addr(), group, topic, body])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the orphan producer");
    let deadline = Instant::now() + PROMPT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("orphan producer status") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the orphan producer (pid {}) did not exit within {PROMPT:?}",
                child.id()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = child.wait_with_output().expect("orphan producer output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success(),
        "orphan producer failed ({status}): {stdout}\n{stderr}"
    );
    eprintln!("[interop] orphan producer: {}", stdout.trim());
    stdout
        .split_whitespace()
        .find_map(|field| field.strip_prefix("msgId="))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("no msgId in the orphan producer's output: {stdout}\n{stderr}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_producer_of_the_group_decides_after_the_first_process_exits() {
    let cluster = Cluster::start_with("tx-orphan", fast_options()).await;
    let (topic, collector, mut consumer) =
        topic_with_recorder(&cluster, "TxTopic", 2, "tx_cg").await;
    let group = unique("tx_orphan_pg");
    let orphan_id = orphan_half(&cluster, &group, &topic, "orphaned").await;

    // The process is gone: nobody decides, nothing is visible.
    assert!(
        !collector.wait_until(SETTLE, |all| !all.is_empty()).await,
        "an undecided transaction was consumed: {:?}",
        collector.all()
    );
    assert_eq!(tx_counters(&cluster).await.pending, 1);

    // A new process of the group finds the transaction committed in its local store.
    let (mut producer, calls) = {
        let orphan_id = orphan_id.clone();
        tx_producer(
            &cluster,
            &group,
            &topic,
            |_| Unknown,
            move |seen| {
                if seen.msg_id == orphan_id {
                    Commit
                } else {
                    Unknown
                }
            },
        )
        .await
    };
    let all = consumed_once(
        &collector,
        "the new producer never settled the transaction",
        &calls,
    )
    .await;
    assert_eq!(all[0].body, "orphaned");
    assert_eq!(
        all[0].msg_id, orphan_id,
        "the message the first process sent"
    );
    let checks = calls.checks_of("orphaned");
    assert!(!checks.is_empty(), "the new producer was asked");
    assert!(checks.iter().all(|c| c.msg_id == orphan_id), "{checks:?}");
    assert!(calls.executed.lock().is_empty());
    let counters = wait_all_decided(&cluster, PROMPT).await;
    assert_eq!(
        (counters.commits, counters.rollbacks),
        (1, 0),
        "{counters:?}"
    );
    assert_eq!(counters.discarded, 0);
    assert_eq!(stored_in(&cluster, &topic, 2), 1);
    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_between_half_and_decision_loses_nothing_and_decides_once() {
    let mut cluster = Cluster::start_with(
        "tx-restart",
        ClusterOptions {
            broker: fast_checks,
            stable_port: true,
        },
    )
    .await;
    let (topic, collector, mut consumer) =
        topic_with_recorder(&cluster, "TxTopic", 2, "tx_cg").await;

    // "blocked": the local transaction runs across the restart and then commits.
    // "unknown": the local transaction answers UNKNOW before the restart; the local store
    // only knows it committed after the restart, so only a check after it can decide.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = parking_lot::Mutex::new(released);
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let blocked_done = Arc::new(AtomicBool::new(false));
    let restarted = Arc::new(AtomicBool::new(false));
    let (producer, calls) = {
        let blocked_done = blocked_done.clone();
        let blocked_done_check = blocked_done.clone();
        let restarted = restarted.clone();
        tx_producer(
            &cluster,
            &unique("tx_restart_pg"),
            &topic,
            move |seen| {
                if seen.body != "blocked" {
                    return Unknown;
                }
                let _ = started_tx.send(());
                let go = released.lock().recv_timeout(PROMPT * 2);
                assert!(go.is_ok(), "the test never released the local transaction");
                blocked_done.store(true, Ordering::SeqCst);
                Commit
            },
            move |seen| match seen.body.as_str() {
                "blocked" if blocked_done_check.load(Ordering::SeqCst) => Commit,
                "unknown" if restarted.load(Ordering::SeqCst) => Commit,
                _ => Unknown,
            },
        )
        .await
    };
    let producer = Arc::new(producer);
    let blocked = {
        let producer = producer.clone();
        let topic = topic.clone();
        tokio::spawn(async move { send_tx(&producer, &topic, "blocked").await })
    };
    within("the blocked half's send", PROMPT, started.recv())
        .await
        .expect("the local transaction started");
    let unknown = send_tx(&producer, &topic, "unknown").await;
    assert_eq!(unknown.local_transaction_state, Some(Unknown));

    cluster.restart_broker(&topic).await;
    let restart_done = Instant::now();
    restarted.store(true, Ordering::SeqCst);
    assert_eq!(
        tx_counters(&cluster).await.pending,
        2,
        "both halves survive the restart undecided"
    );
    release.send(()).expect("release the local transaction");
    let blocked = within("the blocked transaction", PROMPT, blocked)
        .await
        .expect("send task");
    assert_eq!(blocked.local_transaction_state, Some(Commit));

    if !collector.wait_count(2, PROMPT).await {
        let counters = tx_counters(&cluster).await;
        panic!(
            "not both committed after the restart: {:?}; checks: {:?}; broker: {counters:?}",
            collector.bodies(),
            calls.checked.lock()
        );
    }
    assert!(
        !collector.wait_until(SETTLE, |all| all.len() > 2).await,
        "consumed more than once: {:?}",
        collector.all()
    );
    let all = collector.all();
    assert_eq!(
        counts(all.iter().map(|r| r.body.as_str())),
        BTreeMap::from([("blocked", 1), ("unknown", 1)])
    );
    for (got, sent) in [("blocked", &blocked), ("unknown", &unknown)] {
        let r = all.iter().find(|r| r.body == got).expect("received");
        assert_eq!(r.msg_id, msg_id(sent), "{got}");
        assert_eq!(r.queue_id, queue_id(sent), "{got}");
    }
    let counters = wait_all_decided(&cluster, PROMPT).await;
    // Counters start over with the new broker process: both decisions came after it.
    assert_eq!(
        (counters.commits, counters.rollbacks),
        (2, 0),
        "{counters:?}"
    );
    assert_eq!(counters.discarded, 0);
    assert_eq!(stored_in(&cluster, &topic, 2), 2);
    let after_restart = |body: &str| {
        calls
            .checks_of(body)
            .iter()
            .filter(|c| c.at >= restart_done)
            .count()
    };
    assert!(after_restart("unknown") >= 1, "{:?}", calls.checked.lock());
    eprintln!(
        "[interop] after the restart: 'blocked' checked {} times, 'unknown' {} times (broker: {counters:?})",
        after_restart("blocked"),
        after_restart("unknown"),
    );
    let mut producer = Arc::into_inner(producer).expect("the send task is done");
    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.shutdown().await;
}

/// What one of the concurrent transactions does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// The local transaction's answer.
    execute: LocalTransactionState,
    /// For UNKNOW: how many checks answer UNKNOW again before the decision.
    unknown_checks: u32,
    /// The decision (equals `execute` unless that is UNKNOW).
    decision: LocalTransactionState,
}

impl Plan {
    fn random(rng: &mut fastrand::Rng) -> Self {
        let decision = if rng.bool() { Commit } else { Rollback };
        match rng.u32(0..10) {
            0..=2 => Self {
                execute: Commit,
                unknown_checks: 0,
                decision: Commit,
            },
            3..=5 => Self {
                execute: Rollback,
                unknown_checks: 0,
                decision: Rollback,
            },
            // UNKNOW, settled by the first check or after one or two more UNKNOW answers.
            6..=8 => Self {
                execute: Unknown,
                unknown_checks: 0,
                decision,
            },
            _ => Self {
                execute: Unknown,
                unknown_checks: rng.u32(1..=2),
                decision,
            },
        }
    }
}

/// `KARMAN_SEED` if set (to replay), else a fresh one; printed.
fn seed() -> u64 {
    let seed = std::env::var("KARMAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("[interop] transactions seed: KARMAN_SEED={seed}");
    seed
}

const CONCURRENT: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_transactions_end_decided_and_counted_exactly() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let plans: Arc<BTreeMap<String, Plan>> = Arc::new(
        (0..CONCURRENT)
            .map(|i| (format!("tx-{i:04}"), Plan::random(&mut rng)))
            .collect(),
    );
    let cluster = Cluster::start_with("tx-many", fast_options()).await;
    let (topic, collector, mut consumer) =
        topic_with_recorder(&cluster, "TxTopic", 4, "tx_cg").await;

    // The producer's local store: which local transactions ran, and how many checks each
    // UNKNOW one has answered.
    let executed: Shared<BTreeSet<String>> = Shared::default();
    let unknown_answers: Shared<BTreeMap<String, u32>> = Shared::default();
    let (producer, calls) = {
        let (plans_e, plans_c) = (plans.clone(), plans.clone());
        let (executed_e, executed_c) = (executed.clone(), executed.clone());
        tx_producer(
            &cluster,
            &unique("tx_many_pg"),
            &topic,
            move |seen| {
                let plan = plans_e[&seen.body];
                executed_e.lock().insert(seen.body.clone());
                plan.execute
            },
            move |seen| {
                let plan = plans_c[&seen.body];
                if !executed_c.lock().contains(&seen.body) {
                    // Asked before the local transaction ran: not known yet.
                    return Unknown;
                }
                if plan.execute != Unknown {
                    // Decided at once; the broker asked before that decision arrived.
                    return plan.execute;
                }
                let mut answers = unknown_answers.lock();
                let answered = answers.entry(seen.body.clone()).or_default();
                if *answered < plan.unknown_checks {
                    *answered += 1;
                    Unknown
                } else {
                    plan.decision
                }
            },
        )
        .await
    };
    let producer = Arc::new(producer);

    let started = Instant::now();
    let sends: Vec<_> = plans
        .keys()
        .map(|body| {
            let producer = producer.clone();
            let topic = topic.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let result = send_tx(&producer, &topic, &body).await;
                (body, result)
            })
        })
        .collect();
    let mut results = BTreeMap::new();
    let mut mismatched = Vec::new();
    for send in sends {
        let (body, result) = within("a transactional send", PROMPT, send)
            .await
            .expect("send task");
        if result.local_transaction_state != Some(plans[&body].execute) {
            let ran = executed.lock().contains(&body);
            mismatched.push((body.clone(), result.local_transaction_state, ran));
        }
        results.insert(body, result);
    }
    // (body, the state the send reports, whether the listener ran at all)
    assert!(
        mismatched.is_empty(),
        "{} sends report another local state than the listener's: {:?}",
        mismatched.len(),
        &mismatched[..mismatched.len().min(20)]
    );
    eprintln!(
        "[interop] {CONCURRENT} transactional sends done in {:.1?}",
        started.elapsed()
    );

    let committed: BTreeSet<String> = plans
        .iter()
        .filter(|(_, p)| p.decision == Commit)
        .map(|(b, _)| b.clone())
        .collect();
    let rolled_back = CONCURRENT - committed.len();
    let unknowns = plans.values().filter(|p| p.execute == Unknown).count();
    eprintln!(
        "[interop] plans: {} committed, {rolled_back} rolled back, {unknowns} of them through the check",
        committed.len()
    );

    let counters = wait_all_decided(&cluster, Duration::from_secs(45)).await;
    assert!(
        collector
            .wait_count(committed.len(), Duration::from_secs(45))
            .await,
        "{} of {} committed messages consumed; broker: {counters:?}",
        collector.all().len(),
        committed.len()
    );
    assert!(
        !collector
            .wait_until(SETTLE, |all| all.len() > committed.len())
            .await,
        "consumed more than committed: {} > {}",
        collector.all().len(),
        committed.len()
    );
    eprintln!(
        "[interop] all decided and consumed {:.1?} after the first send",
        started.elapsed()
    );

    let all = collector.all();
    let duplicates: Vec<_> = counts(all.iter().map(|r| r.body.clone()))
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(duplicates.is_empty(), "consumed twice: {duplicates:?}");
    let consumed: BTreeSet<String> = all.iter().map(|r| r.body.clone()).collect();
    let rolled_back_consumed: Vec<_> = consumed.difference(&committed).collect();
    assert!(
        rolled_back_consumed.is_empty(),
        "rolled back yet consumed: {rolled_back_consumed:?}"
    );
    assert_eq!(consumed, committed, "consumed set == committed set");
    for r in &all {
        let sent = &results[&r.body];
        assert_eq!(r.msg_id, msg_id(sent), "{}", r.body);
        assert_eq!(r.queue_id, queue_id(sent), "{}", r.body);
    }
    for (body, plan) in plans.iter().filter(|(_, p)| p.execute == Unknown) {
        let asked = calls.checks_of(body).len();
        assert!(
            asked > usize::try_from(plan.unknown_checks).unwrap(),
            "{body} ({plan:?}) was checked {asked} times"
        );
    }

    let counters = tx_counters(&cluster).await;
    assert_eq!(
        (
            counters.pending,
            counters.commits,
            counters.rollbacks,
            counters.discarded
        ),
        (
            0,
            i64::try_from(committed.len()).unwrap(),
            i64::try_from(rolled_back).unwrap(),
            0
        ),
        "broker counters: {counters:?}"
    );
    assert!(
        counters.checks >= i64::try_from(unknowns).unwrap(),
        "{counters:?}"
    );
    assert_eq!(
        stored_in(&cluster, &topic, 4),
        i64::try_from(committed.len()).unwrap(),
        "only committed messages are stored in the topic"
    );
    eprintln!(
        "[interop] broker: {counters:?}; listener: {} executions, {} checks",
        calls.executed.lock().len(),
        calls.checked.lock().len()
    );
    let mut producer = Arc::into_inner(producer).expect("every send task is done");
    producer.shutdown().await;
    consumer.shutdown().await;
    cluster.shutdown().await;
}
