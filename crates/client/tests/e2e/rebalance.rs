//! Rebalance against the real broker: three consumers of one group join and leave while a
//! producer sends; every message is consumed, and with an orderly listener no queue is
//! ever consumed by two members at once.
//!
//! Membership churn is randomized from a seed (printed; `KARMAN_SEED=<n>` replays it).
//! Exclusivity is observed from the consumers' side: every listener call records which
//! member consumed which queue from when to when, and no two calls of different members
//! on one queue may overlap in time. RocketMQ is at-least-once, so a rebalance may
//! redeliver; duplicates are counted and reported, losses fail the test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeOrderlyStatus, PushConsumer, PushConsumerBuilder,
    concurrently, orderly,
};
use karman_client::{Message, MessageExt, Producer};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::harness::{Cluster, PROMPT, seed, unique, wait_for};

const QUEUES: i32 = 8;
const KEYS: usize = 16;
const MESSAGES: usize = 600;
const SEND_GAP: Duration = Duration::from_millis(8);

/// One listener call: which member consumed which queue, when, and what.
#[derive(Debug, Clone)]
struct Call {
    member: usize,
    queue_id: i32,
    start: Instant,
    end: Instant,
    /// (msg_id, body) of each message in the call.
    messages: Vec<(String, String)>,
}

#[derive(Default)]
struct Journal {
    calls: Mutex<Vec<Call>>,
}

impl Journal {
    fn record(&self, member: usize, start: Instant, messages: &[MessageExt]) {
        let call = Call {
            member,
            queue_id: messages.first().map_or(-1, |m| m.queue_id),
            start,
            end: Instant::now(),
            messages: messages
                .iter()
                .map(|m| (m.msg_id(), String::from_utf8_lossy(&m.body).into_owned()))
                .collect(),
        };
        self.calls.lock().push(call);
    }

    fn consumed_ids(&self) -> BTreeSet<String> {
        self.calls
            .lock()
            .iter()
            .flat_map(|c| c.messages.iter().map(|(id, _)| id.clone()))
            .collect()
    }

    fn deliveries(&self) -> usize {
        self.calls.lock().iter().map(|c| c.messages.len()).sum()
    }
}

/// Sends `MESSAGES` ordered messages (key `k<i % KEYS>`) with a small gap; returns the
/// msg_ids in send order with their keys.
fn start_flow(producer: Producer, topic: String) -> JoinHandle<Vec<(String, String)>> {
    tokio::spawn(async move {
        let mut sent = Vec::with_capacity(MESSAGES);
        for i in 0..MESSAGES {
            let key = format!("k{}", i % KEYS);
            let result = producer
                .send_ordered(Message::new(&topic, format!("{key}:{i}")), &key)
                .await
                .expect("ordered send");
            sent.push((result.msg_id, key));
            tokio::time::sleep(SEND_GAP).await;
        }
        producer.shutdown().await;
        sent
    })
}

/// Joins three members, then three times lets a random member leave and a new one join,
/// with random pauses, while the flow runs. Returns the members left at the end.
async fn churn(
    rng: &mut fastrand::Rng,
    mut join: impl AsyncFnMut(usize) -> PushConsumer,
) -> Vec<(usize, PushConsumer)> {
    let mut members = Vec::new();
    let mut next = 0;
    for _ in 0..3 {
        members.push((next, join(next).await));
        eprintln!("[e2e] member {next} joined");
        next += 1;
        tokio::time::sleep(Duration::from_millis(300 + rng.u64(..500))).await;
    }
    for _ in 0..3 {
        let (id, leaving) = members.remove(rng.usize(..members.len()));
        leaving.shutdown().await;
        eprintln!("[e2e] member {id} left");
        tokio::time::sleep(Duration::from_millis(200 + rng.u64(..400))).await;
        members.push((next, join(next).await));
        eprintln!("[e2e] member {next} joined");
        next += 1;
        tokio::time::sleep(Duration::from_millis(300 + rng.u64(..500))).await;
    }
    members
}

fn member(cluster: &Cluster, group: &str, topic: &str, id: usize) -> PushConsumerBuilder {
    cluster
        .push_consumer(group, &format!("member{id}"))
        .subscribe(topic, "*")
}

/// Pairs of calls of different members on one queue that overlap in time.
fn overlaps(calls: &[Call]) -> Vec<(Call, Call)> {
    let mut by_queue: BTreeMap<i32, Vec<&Call>> = BTreeMap::new();
    for call in calls {
        by_queue.entry(call.queue_id).or_default().push(call);
    }
    let mut found = Vec::new();
    for calls in by_queue.values_mut() {
        calls.sort_by_key(|c| c.start);
        // The latest-ending call so far; any later-starting call of another member that
        // starts before it ends overlaps it.
        let mut open: Option<&Call> = None;
        for call in calls.iter() {
            if let Some(o) = open
                && call.start < o.end
                && call.member != o.member
            {
                found.push(((*o).clone(), (*call).clone()));
            }
            if open.is_none_or(|o| call.end > o.end) {
                open = Some(call);
            }
        }
    }
    found
}

/// Duplicate deliveries: msg_id → times delivered, for those delivered more than once.
fn duplicates(calls: &[Call]) -> BTreeMap<String, usize> {
    let mut times: BTreeMap<String, usize> = BTreeMap::new();
    for call in calls {
        for (id, _) in &call.messages {
            *times.entry(id.clone()).or_default() += 1;
        }
    }
    times.retain(|_, n| *n > 1);
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_members_join_and_leave_while_messages_flow_and_never_share_a_queue() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let cluster = Cluster::start("rebalance_orderly").await;
    let topic = unique("RebalanceOrderly");
    cluster.create_topic_with(&topic, QUEUES, true).await;
    let group = unique("rebalance_orderly_cg");
    let journal = Arc::new(Journal::default());
    let flow = start_flow(
        cluster.producer(&unique("rebalance_pg")).await,
        topic.clone(),
    );

    let members = churn(&mut rng, async |id| {
        let journal = journal.clone();
        member(&cluster, &group, &topic, id)
            .listener_orderly(orderly(move |messages| {
                let journal = journal.clone();
                async move {
                    let start = Instant::now();
                    // Long enough for a concurrent call of another member to show.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    journal.record(id, start, &messages);
                    ConsumeOrderlyStatus::Success
                }
            }))
            .start()
            .await
            .expect("orderly member starts")
    })
    .await;
    let sent = flow.await.expect("the flow finished");
    let wanted: BTreeSet<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    let all_consumed = wait_for(PROMPT, || journal.consumed_ids().is_superset(&wanted)).await;
    // Once the churn is over the three members settle on a partition of the queues
    // (a moment where a queue shows in two assignments is a hand-off in progress: the
    // old owner has unlocked and not yet forgotten it).
    let ownership = || -> Vec<(usize, Vec<i32>)> {
        members
            .iter()
            .map(|(id, m)| {
                let queues = m
                    .assigned_queues()
                    .into_iter()
                    .filter(|q| q.topic == topic)
                    .map(|q| q.queue_id)
                    .collect();
                (*id, queues)
            })
            .collect()
    };
    let is_partition = |owned: &[(usize, Vec<i32>)]| {
        let all: Vec<i32> = owned.iter().flat_map(|(_, q)| q.iter().copied()).collect();
        let distinct: BTreeSet<i32> = all.iter().copied().collect();
        all.len() == distinct.len() && distinct == (0..QUEUES).collect()
    };
    let settled = wait_for(PROMPT, || is_partition(&ownership())).await;
    let owned = ownership();
    for (_, m) in &members {
        m.shutdown().await;
    }
    let calls = journal.calls.lock().clone();
    let dups = duplicates(&calls);
    eprintln!(
        "[e2e] orderly churn (seed {seed}): {} sent, {} deliveries, {} duplicated, final ownership {owned:?}",
        sent.len(),
        journal.deliveries(),
        dups.len()
    );
    assert!(
        all_consumed,
        "messages lost (seed {seed}): {:?}",
        wanted
            .difference(&journal.consumed_ids())
            .collect::<Vec<_>>()
    );
    let overlapping = overlaps(&calls);
    assert!(
        overlapping.is_empty(),
        "a queue was consumed by two members at once (seed {seed}): {:#?}",
        &overlapping[..overlapping.len().min(3)]
    );
    // Per key, first deliveries come in send order (redeliveries may repeat a tail).
    let position: BTreeMap<&str, usize> = sent
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();
    let mut calls_in_time = calls.clone();
    calls_in_time.sort_by_key(|c| c.start);
    let mut seen = BTreeSet::new();
    let mut last_by_key: BTreeMap<&str, usize> = BTreeMap::new();
    for call in &calls_in_time {
        for (id, body) in &call.messages {
            if !seen.insert(id.clone()) {
                continue;
            }
            let at = position[id.as_str()];
            let key = sent[at].1.as_str();
            assert!(body.starts_with(key), "{body} is not of key {key}");
            if let Some(last) = last_by_key.insert(key, at) {
                assert!(
                    last < at,
                    "key {key}: message {at} consumed before {last} (seed {seed})"
                );
            }
        }
    }
    assert!(
        settled,
        "the members never settled on a partition of the queues (seed {seed}): {owned:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_members_join_and_leave_while_messages_flow_and_lose_nothing() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let cluster = Cluster::start("rebalance_concurrent").await;
    let topic = unique("RebalanceConcurrent");
    cluster.create_topic(&topic, QUEUES).await;
    let group = unique("rebalance_concurrent_cg");
    let journal = Arc::new(Journal::default());
    let flow = start_flow(
        cluster.producer(&unique("rebalance_pg")).await,
        topic.clone(),
    );

    let members = churn(&mut rng, async |id| {
        let journal = journal.clone();
        member(&cluster, &group, &topic, id)
            .listener_concurrently(concurrently(move |messages| {
                let journal = journal.clone();
                async move {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    journal.record(id, start, &messages);
                    ConsumeConcurrentlyStatus::ConsumeSuccess
                }
            }))
            .start()
            .await
            .expect("concurrent member starts")
    })
    .await;
    let sent = flow.await.expect("the flow finished");
    let wanted: BTreeSet<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    let all_consumed = wait_for(PROMPT, || journal.consumed_ids().is_superset(&wanted)).await;
    for (_, m) in &members {
        m.shutdown().await;
    }
    let calls = journal.calls.lock().clone();
    let dups = duplicates(&calls);
    eprintln!(
        "[e2e] concurrent churn (seed {seed}): {} sent, {} deliveries, {} duplicated: {:?}",
        sent.len(),
        journal.deliveries(),
        dups.len(),
        dups.iter().take(10).collect::<Vec<_>>()
    );
    assert!(
        all_consumed,
        "messages lost (seed {seed}): {:?}",
        wanted
            .difference(&journal.consumed_ids())
            .collect::<Vec<_>>()
    );
    cluster.shutdown().await;
}
