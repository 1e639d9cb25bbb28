//! Orderly consumption under broker locks, and the rebalance scenario of issue 6: three
//! consumers of one group join and leave while messages flow; every message is consumed,
//! and with an orderly listener no queue is ever consumed by two members at once.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeFromWhere, ConsumeOrderlyStatus, PushConsumer, concurrently,
    orderly,
};
use karman_client::producer::Producer;
use karman_client::{Message, MessageExt, MessageQueue};
use parking_lot::Mutex;
use support::{FakeBroker, eventually, fast_client, init_tracing, seed, start_namesrv};

#[tokio::test]
async fn orderly_listener_sees_queue_order_holds_the_lock_and_suspends_locally() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("O", 2)]).await;
    let producer = Producer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("pg")
        .build()
        .await
        .unwrap();
    for i in 0..20 {
        let key = format!("order-{}", i % 3);
        producer
            .send_ordered(Message::new("O", format!("{key}:{i}")), &key)
            .await
            .unwrap();
    }
    let seen: Arc<Mutex<Vec<MessageExt>>> = Arc::default();
    let suspended_once = Arc::new(AtomicBool::new(false));
    let (seen2, suspended2) = (seen.clone(), suspended_once.clone());
    let consumer = PushConsumer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("og")
        .subscribe("O", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_orderly(orderly(move |messages| {
            let (seen, suspended) = (seen2.clone(), suspended2.clone());
            async move {
                seen.lock().extend(messages.iter().cloned());
                let third = messages.iter().any(|m| m.queue_offset == 2);
                if third && !suspended.swap(true, Ordering::SeqCst) {
                    return ConsumeOrderlyStatus::SuspendCurrentQueueAMoment;
                }
                ConsumeOrderlyStatus::Success
            }
        }))
        .start()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "20 consumed plus one redelivery",
        || seen.lock().len() == 21,
    )
    .await;
    let mut per_queue: BTreeMap<i32, Vec<(i64, i32)>> = BTreeMap::new();
    for m in seen.lock().iter() {
        per_queue
            .entry(m.queue_id)
            .or_default()
            .push((m.queue_offset, m.reconsume_times));
    }
    for (queue, consumed) in &per_queue {
        let offsets: Vec<i64> = consumed.iter().map(|(o, _)| *o).collect();
        let mut sorted = offsets.clone();
        sorted.sort();
        sorted.dedup();
        let mut expect: Vec<i64> = sorted.clone();
        if let Some(at) = offsets
            .iter()
            .position(|o| *o == 2)
            .filter(|_| consumed.iter().any(|(_, r)| *r == 1))
        {
            expect.insert(at + 1, 2);
        }
        assert_eq!(
            offsets, expect,
            "queue {queue} consumed out of order: {consumed:?}"
        );
    }
    assert!(
        seen.lock()
            .iter()
            .any(|m| m.queue_offset == 2 && m.reconsume_times == 1),
        "suspended message redelivered locally"
    );
    assert!(
        broker.state.send_backs.lock().is_empty(),
        "orderly retries are local"
    );
    assert!(broker.state.lock_requests.load(Ordering::SeqCst) >= 2);
    let holder = consumer.client_id().to_owned();
    assert!(
        broker
            .state
            .locks
            .lock()
            .values()
            .all(|(client, _)| *client == holder)
    );
    consumer.shutdown().await;
    assert!(
        broker.state.locks.lock().is_empty(),
        "shutdown unlocks every queue"
    );
    for q in 0..2 {
        let len = broker.queue_len("O", q) as i64;
        assert_eq!(broker.consumer_offset("og", "O", q), Some(len));
    }
    producer.shutdown().await;
}

/// Who is inside the listener for which queue right now.
#[derive(Default)]
struct Ownership {
    inside: Mutex<HashMap<MessageQueue, usize>>,
    violations: AtomicUsize,
    consumed: Mutex<BTreeSet<String>>,
}

fn orderly_member(
    namesrv: &karman_namesrv::NamesrvHandle,
    member: usize,
    ownership: &Arc<Ownership>,
) -> karman_client::consumer::PushConsumerBuilder {
    let ownership = ownership.clone();
    PushConsumer::builder()
        .client_config(fast_client(namesrv, "DEFAULT"))
        .group("rg")
        .subscribe("R", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_orderly(orderly(move |messages| {
            let ownership = ownership.clone();
            async move {
                let mq = MessageQueue::new("R", "broker-a", messages[0].queue_id);
                let previous = ownership.inside.lock().insert(mq.clone(), member);
                if previous.is_some_and(|other| other != member) {
                    ownership.violations.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
                ownership.consumed.lock().extend(
                    messages
                        .iter()
                        .filter_map(|m| m.properties.uniq_key().map(str::to_owned)),
                );
                ownership.inside.lock().remove(&mq);
                ConsumeOrderlyStatus::Success
            }
        }))
}

#[tokio::test]
async fn three_members_join_and_leave_while_messages_flow() {
    init_tracing();
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let _broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("R", 8)]).await;
    let producer = Producer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("pg")
        .build()
        .await
        .unwrap();
    let sent: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let (sent2, producer2) = (sent.clone(), producer.clone());
    let total = 400;
    let flow = tokio::spawn(async move {
        for i in 0..total {
            let key = format!("k{}", i % 16);
            let result = producer2
                .send_ordered(Message::new("R", format!("{key}:{i}")), &key)
                .await
                .unwrap();
            sent2.lock().insert(result.msg_id);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let ownership = Arc::new(Ownership::default());
    let mut members: Vec<(usize, PushConsumer)> = Vec::new();
    let mut next_member = 0;
    // Join three, then churn: a random member leaves and a new one joins, a few times.
    for _ in 0..3 {
        members.push((
            next_member,
            orderly_member(&namesrv, next_member, &ownership)
                .start()
                .await
                .unwrap(),
        ));
        next_member += 1;
        tokio::time::sleep(Duration::from_millis(150 + rng.u64(..200))).await;
    }
    for _ in 0..3 {
        let leaving = members.remove(rng.usize(..members.len()));
        leaving.1.shutdown().await;
        tokio::time::sleep(Duration::from_millis(100 + rng.u64(..200))).await;
        members.push((
            next_member,
            orderly_member(&namesrv, next_member, &ownership)
                .start()
                .await
                .unwrap(),
        ));
        next_member += 1;
        tokio::time::sleep(Duration::from_millis(150 + rng.u64(..200))).await;
    }
    flow.await.unwrap();
    eventually(
        Duration::from_secs(30),
        "every sent message consumed",
        || {
            let consumed = ownership.consumed.lock();
            sent.lock().iter().all(|id| consumed.contains(id))
        },
    )
    .await;
    assert_eq!(sent.lock().len(), total);
    assert_eq!(
        ownership.violations.load(Ordering::SeqCst),
        0,
        "a queue was consumed by two members at once (seed {seed})"
    );
    let mut owned = BTreeSet::new();
    for (_, member) in &members {
        for mq in member
            .assigned_queues()
            .into_iter()
            .filter(|q| q.topic == "R")
        {
            assert!(owned.insert(mq.clone()), "{mq} assigned twice");
        }
    }
    for (_, member) in members {
        member.shutdown().await;
    }
    producer.shutdown().await;
}

#[tokio::test]
async fn concurrent_members_share_the_work_and_lose_nothing() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("C", 6)]).await;
    let consumed: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut members = Vec::new();
    for _ in 0..3 {
        let consumed = consumed.clone();
        members.push(
            PushConsumer::builder()
                .client_config(fast_client(&namesrv, "DEFAULT"))
                .group("cg")
                .subscribe("C", "*")
                .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
                .listener_concurrently(concurrently(move |messages| {
                    let consumed = consumed.clone();
                    async move {
                        for m in messages {
                            *consumed.lock().entry(m.msg_id()).or_default() += 1;
                        }
                        ConsumeConcurrentlyStatus::ConsumeSuccess
                    }
                }))
                .start()
                .await
                .unwrap(),
        );
    }
    eventually(Duration::from_secs(10), "2 queues each", || {
        members.iter().all(|m| {
            m.assigned_queues()
                .iter()
                .filter(|q| q.topic == "C")
                .count()
                == 2
        })
    })
    .await;
    for q in 0..6 {
        for i in 0..10 {
            broker.put(
                "C",
                q,
                b"x",
                &[("UNIQ_KEY", format!("{q}-{i}"))].into_iter().collect(),
            );
        }
    }
    eventually(Duration::from_secs(10), "60 consumed", || {
        consumed.lock().len() == 60
    })
    .await;
    assert!(
        consumed.lock().values().all(|n| *n == 1),
        "no duplicates without churn"
    );
    for m in members {
        m.shutdown().await;
    }
}

#[tokio::test]
async fn locks_are_renewed_and_a_lost_lock_stops_consumption() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("L", 1)]).await;
    let seen: Arc<Mutex<Vec<MessageExt>>> = Arc::default();
    let seen2 = seen.clone();
    let config = karman_client::consumer::PushConsumerConfig {
        lock_renew_interval: Duration::from_millis(200),
        pull_time_delay_when_exception: Duration::from_millis(100),
        ..Default::default()
    };
    let consumer = PushConsumer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("lg")
        .consumer_config(config)
        .subscribe("L", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_orderly(orderly(move |messages| {
            let seen = seen2.clone();
            async move {
                seen.lock().extend(messages);
                ConsumeOrderlyStatus::Success
            }
        }))
        .start()
        .await
        .unwrap();
    let mq = MessageQueue::new("L", "broker-a", 0);
    broker.put("L", 0, b"one", &Default::default());
    eventually(Duration::from_secs(5), "first message", || {
        seen.lock().len() == 1
    })
    .await;
    let before = broker.state.lock_requests.load(Ordering::SeqCst);
    eventually(Duration::from_secs(3), "renewals every 200 ms", || {
        broker.state.lock_requests.load(Ordering::SeqCst) >= before + 2
    })
    .await;

    // Another member takes the lock (as after this client's lock expired on the broker).
    broker.state.locks.lock().insert(
        ("lg".into(), mq.clone()),
        ("intruder".into(), tokio::time::Instant::now()),
    );
    let refused_at = broker.state.lock_requests.load(Ordering::SeqCst);
    eventually(Duration::from_secs(3), "a renewal refused", || {
        broker.state.lock_requests.load(Ordering::SeqCst) > refused_at
    })
    .await;
    broker.put("L", 0, b"two", &Default::default());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        seen.lock().len(),
        1,
        "a queue whose lock is lost is not consumed"
    );

    broker.state.locks.lock().remove(&("lg".into(), mq.clone()));
    eventually(
        Duration::from_secs(5),
        "consumption resumes once the lock is back",
        || seen.lock().len() == 2,
    )
    .await;
    consumer.shutdown().await;
}
