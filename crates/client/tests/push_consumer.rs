//! Push consumer behaviour against a real NameServer and fake brokers: heartbeats, the
//! pull loop and its reaction to 19/20/21, offsets, start positions, tag filters, retry
//! through send-back and its local fallback, broadcasting, batch consume, flow control,
//! NOTIFY_CONSUMER_IDS_CHANGED and broker-to-client queries.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use karman_client::consumer::{
    ConsumeConcurrentlyStatus, ConsumeFromWhere, MessageModel, PushConsumer, PushConsumerBuilder,
    concurrently,
};
use karman_client::{MessageExt, MessageQueue};
use karman_protocol::body::{ConsumerRunningInfo, fastjson};
use karman_protocol::header::GetConsumerRunningInfoRequestHeader;
use karman_protocol::message::Properties;
use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use parking_lot::Mutex;
use support::{FakeBroker, eventually, fast_client, init_tracing, start_namesrv};

type Seen = Arc<Mutex<Vec<MessageExt>>>;

fn recording(
    seen: &Seen,
    status: ConsumeConcurrentlyStatus,
) -> impl karman_client::consumer::MessageListenerConcurrently {
    let seen = seen.clone();
    concurrently(move |messages| {
        let seen = seen.clone();
        async move {
            seen.lock().extend(messages);
            status
        }
    })
}

fn builder(namesrv: &karman_namesrv::NamesrvHandle, group: &str) -> PushConsumerBuilder {
    PushConsumer::builder()
        .client_config(fast_client(namesrv, "DEFAULT"))
        .group(group)
}

fn fill(broker: &FakeBroker, topic: &str, queues: i32, per_queue: usize, tag: &str) {
    for q in 0..queues {
        for i in 0..per_queue {
            let props: Properties = [
                ("TAGS", tag.to_owned()),
                ("UNIQ_KEY", format!("{topic}-{q}-{i}")),
            ]
            .into_iter()
            .collect();
            broker.put(topic, q, format!("{q}:{i}").as_bytes(), &props);
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn clustering_consumer_takes_every_queue_consumes_all_and_commits() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 4)]).await;
    fill(&broker, "T", 4, 5, "TagA");
    let seen = Seen::default();
    let consumer = builder(&namesrv, "cg")
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(recording(&seen, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "20 messages consumed", || seen.lock().len() == 20).await;
    assert_eq!(
        consumer
            .assigned_queues()
            .iter()
            .filter(|q| q.topic == "T")
            .count(),
        4
    );
    for q in 0..4 {
        eventually(WAIT, "offset persisted", || {
            broker.consumer_offset("cg", "T", q) == Some(5)
        })
        .await;
    }

    let heartbeat = broker.state.heartbeats.lock().last().cloned().unwrap();
    let data = &heartbeat.consumer_data_set[0];
    assert_eq!(data.group_name, "cg");
    assert_eq!(
        data.consume_type,
        karman_protocol::body::ConsumeType::ConsumePassively
    );
    assert_eq!(
        data.consume_from_where,
        ConsumeFromWhere::ConsumeFromFirstOffset
    );
    let topics: Vec<_> = data
        .subscription_data_set
        .iter()
        .map(|s| s.topic.as_str())
        .collect();
    assert_eq!(topics, ["%RETRY%cg", "T"]);

    let pull = broker
        .state
        .pulls
        .lock()
        .iter()
        .find(|p| p.topic == "T")
        .cloned()
        .unwrap();
    assert_eq!(pull.consumer_group, "cg");
    assert_eq!(pull.suspend_timeout_millis, 15_000);
    assert_eq!(pull.max_msg_nums, 32);
    assert_eq!(pull.sys_flag & 0x2, 0x2, "suspend bit");
    assert_eq!(pull.sys_flag & 0x10, 0, "not a lite pull");
    // Long polling: a message sent now reaches the listener without waiting for a hold.
    broker.put(
        "T",
        2,
        b"late",
        &[("UNIQ_KEY", "late")].into_iter().collect(),
    );
    eventually(Duration::from_secs(3), "held pull woke up", || {
        seen.lock().len() == 21
    })
    .await;
    eventually(WAIT, "a later pull piggybacks the commit offset", || {
        broker
            .state
            .pulls
            .lock()
            .iter()
            .any(|p| p.topic == "T" && p.sys_flag & 0x1 == 1 && p.commit_offset >= 5)
    })
    .await;

    consumer.shutdown().await;
    assert_eq!(broker.consumer_offset("cg", "T", 2), Some(6));
    assert!(
        broker
            .state
            .unregistered
            .lock()
            .iter()
            .any(|u| u.consumer_group.as_deref() == Some("cg"))
    );
}

#[tokio::test]
async fn start_positions_follow_consume_from_where() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    fill(&broker, "T", 1, 3, "x");

    // LAST_OFFSET with nothing stored: start at the max offset, old messages skipped.
    let last = Seen::default();
    let consumer = builder(&namesrv, "last")
        .subscribe("T", "*")
        .listener_concurrently(recording(&last, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "queue taken", || {
        consumer.assigned_queues().iter().any(|q| q.topic == "T")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.put("T", 0, b"new", &Properties::new());
    eventually(WAIT, "new message", || last.lock().len() == 1).await;
    assert_eq!(&last.lock()[0].body[..], b"new");
    consumer.shutdown().await;

    // A stored offset wins over consume-from-where.
    broker
        .state
        .offsets
        .lock()
        .insert(("stored".into(), "T".into(), 0), 2);
    let stored = Seen::default();
    let consumer = builder(&namesrv, "stored")
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(recording(
            &stored,
            ConsumeConcurrentlyStatus::ConsumeSuccess,
        ))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "from offset 2", || stored.lock().len() == 2).await;
    assert_eq!(stored.lock()[0].queue_offset, 2);
    consumer.shutdown().await;

    // TIMESTAMP: the broker's search decides.
    let at = Seen::default();
    let consumer = builder(&namesrv, "ts")
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromTimestamp)
        .consume_timestamp_ms(0)
        .listener_concurrently(recording(&at, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "everything stored after epoch", || {
        at.lock().len() == 4
    })
    .await;
    consumer.shutdown().await;
}

#[tokio::test]
async fn pull_loop_follows_next_begin_offset_and_offset_moved() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    fill(&broker, "T", 1, 10, "x");
    // First pull: 20 (no match) → 3; second: 21 (offset moved) → 6.
    broker.state.pull_script.lock().extend([
        (ResponseCode::PullRetryImmediately, 3),
        (ResponseCode::PullOffsetMoved, 6),
    ]);
    let seen = Seen::default();
    let consumer = builder(&namesrv, "cg")
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(recording(&seen, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "messages 6..10", || seen.lock().len() == 4).await;
    let offsets: Vec<i64> = seen.lock().iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [6, 7, 8, 9]);
    let pulls: Vec<i64> = broker
        .state
        .pulls
        .lock()
        .iter()
        .filter(|p| p.topic == "T")
        .map(|p| p.queue_offset)
        .collect();
    assert_eq!(
        &pulls[..3],
        [0, 3, 6],
        "20 moves to nextBeginOffset, 21 restarts there"
    );
    consumer.shutdown().await;
}

#[tokio::test]
async fn tag_subscriptions_filter_on_the_client_too() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    for (i, tag) in ["TagA", "TagB", "TagC", "TagA"].iter().enumerate() {
        broker.put(
            "T",
            0,
            format!("{i}").as_bytes(),
            &[("TAGS", *tag)].into_iter().collect(),
        );
    }
    let seen = Seen::default();
    let consumer = builder(&namesrv, "cg")
        .subscribe("T", "TagA || TagC")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(recording(&seen, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "three matching", || seen.lock().len() == 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tags: Vec<_> = seen
        .lock()
        .iter()
        .map(|m| m.tags().unwrap().to_owned())
        .collect();
    assert_eq!(tags, ["TagA", "TagC", "TagA"]);
    let sub = broker
        .state
        .heartbeats
        .lock()
        .last()
        .unwrap()
        .consumer_data_set[0]
        .subscription_data_set[1]
        .clone();
    assert_eq!(sub.sub_string, "TagA || TagC");
    assert_eq!(sub.code_set.len(), 2);
    consumer.shutdown().await;
}

#[tokio::test]
async fn reconsume_later_sends_back_and_the_retry_comes_back_with_its_topic() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    broker.put(
        "T",
        0,
        b"flaky",
        &[("UNIQ_KEY", "U1"), ("TAGS", "A")].into_iter().collect(),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Seen::default();
    let (calls2, seen2) = (calls.clone(), seen.clone());
    let consumer = builder(&namesrv, "cg")
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |messages| {
            let (calls, seen) = (calls2.clone(), seen2.clone());
            async move {
                seen.lock().extend(messages);
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    ConsumeConcurrentlyStatus::ReconsumeLater
                } else {
                    ConsumeConcurrentlyStatus::ConsumeSuccess
                }
            }
        }))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "redelivered from the retry topic", || {
        seen.lock().len() == 2
    })
    .await;
    let back = broker.state.send_backs.lock()[0].clone();
    assert_eq!(back.group, "cg");
    assert_eq!(back.delay_level, 0);
    assert_eq!(back.max_reconsume_times, Some(16));
    assert_eq!(back.origin_msg_id.as_deref(), Some("U1"));
    assert_eq!(back.offset, broker.messages("T")[0].commit_log_offset);
    let retried = seen.lock()[1].clone();
    assert_eq!(
        retried.topic, "T",
        "RETRY_TOPIC restores the original topic"
    );
    assert_eq!(retried.reconsume_times, 1);
    assert_eq!(&retried.body[..], b"flaky");
    eventually(WAIT, "original offset committed", || {
        broker.consumer_offset("cg", "T", 0) == Some(1)
    })
    .await;
    consumer.shutdown().await;
}

#[tokio::test]
async fn failed_send_back_falls_back_to_a_retry_topic_send() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    broker.state.fail_send_back.store(true, Ordering::SeqCst);
    broker.put(
        "T",
        0,
        b"flaky",
        &[("UNIQ_KEY", "U1")].into_iter().collect(),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Seen::default();
    let (calls2, seen2) = (calls.clone(), seen.clone());
    let consumer = builder(&namesrv, "cg")
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |messages| {
            let (calls, seen) = (calls2.clone(), seen2.clone());
            async move {
                seen.lock().extend(messages);
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    ConsumeConcurrentlyStatus::ReconsumeLater
                } else {
                    ConsumeConcurrentlyStatus::ConsumeSuccess
                }
            }
        }))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "re-sent copy consumed", || seen.lock().len() == 2).await;
    let copy = broker.messages("%RETRY%cg")[0].clone();
    assert_eq!(copy.properties.get("RETRY_TOPIC"), Some("T"));
    assert_eq!(copy.properties.get("ORIGIN_MESSAGE_ID"), Some("U1"));
    assert_eq!(
        copy.properties.get("UNIQ_KEY"),
        Some("U1"),
        "the copy keeps the msgId (Java copies every property and only sets a missing \
         UNIQ_KEY), so deduplication by msgId still works"
    );
    assert_eq!(seen.lock()[1].msg_id(), "U1");
    assert_eq!(
        copy.properties.get("DELAY"),
        Some("3"),
        "3 + reconsumeTimes"
    );
    assert_eq!(
        copy.reconsume_times, 1,
        "RECONSUME_TIME travels as header j"
    );
    assert_eq!(copy.properties.get("RECONSUME_TIME"), None);
    assert_eq!(seen.lock()[1].topic, "T");
    consumer.shutdown().await;
}

#[tokio::test]
async fn broadcasting_consumers_each_get_everything_with_local_offsets() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 2)]).await;
    fill(&broker, "T", 2, 3, "x");
    let offsets_dir = tempfile::tempdir().unwrap();
    let (one, two) = (Seen::default(), Seen::default());
    let mut consumers = Vec::new();
    for seen in [&one, &two] {
        consumers.push(
            builder(&namesrv, "bc")
                .subscribe("T", "*")
                .message_model(MessageModel::Broadcasting)
                .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
                .offset_store_dir(offsets_dir.path())
                .listener_concurrently(recording(seen, ConsumeConcurrentlyStatus::ReconsumeLater))
                .start()
                .await
                .unwrap(),
        );
    }
    eventually(WAIT, "both consumed all", || {
        one.lock().len() == 6 && two.lock().len() == 6
    })
    .await;
    let client_id = consumers[0].client_id().to_owned();
    for consumer in &consumers {
        consumer.shutdown().await;
    }
    assert!(
        broker.state.send_backs.lock().is_empty(),
        "broadcasting never sends back"
    );
    assert!(
        broker.state.offsets.lock().is_empty(),
        "broadcasting keeps offsets locally"
    );
    assert!(
        !broker
            .state
            .heartbeats
            .lock()
            .iter()
            .any(|h| h.consumer_data_set.iter().any(|c| c
                .subscription_data_set
                .iter()
                .any(|s| s.topic.starts_with("%RETRY%"))))
    );
    let file = offsets_dir
        .path()
        .join(&client_id)
        .join("bc")
        .join("offsets.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(r#"{"brokerName":"broker-a","queueId":0,"topic":"T"}:3"#),
        "{text}"
    );
}

#[tokio::test]
async fn batches_and_flow_control() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker = FakeBroker::start(
        "broker-a",
        &namesrv.local_addr().to_string(),
        &[("T", 1), ("F", 1)],
    )
    .await;
    fill(&broker, "T", 1, 12, "x");
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let sizes2 = sizes.clone();
    let consumer = builder(&namesrv, "batch")
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .consume_message_batch_max_size(4)
        .listener_concurrently(concurrently(move |messages| {
            let sizes = sizes2.clone();
            async move {
                sizes.lock().push(messages.len());
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "12 in batches", || {
        sizes.lock().iter().sum::<usize>() == 12
    })
    .await;
    assert!(sizes.lock().iter().all(|n| *n <= 4));
    assert!(sizes.lock().iter().any(|n| *n > 1));
    consumer.shutdown().await;

    // A stuck listener: the cache fills to the threshold and pulls stop.
    fill(&broker, "F", 1, 200, "x");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gate2 = gate.clone();
    let config = karman_client::consumer::PushConsumerConfig {
        pull_batch_size: 5,
        pull_threshold_for_queue: 10,
        consume_thread_count: 1,
        await_termination_when_shutdown: Duration::from_millis(100),
        ..Default::default()
    };
    let consumer = builder(&namesrv, "flow")
        .consumer_config(config)
        .subscribe("F", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |_| {
            let gate = gate2.clone();
            async move {
                let _ = gate.acquire().await;
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "first pulls", || {
        broker.state.pulls.lock().iter().any(|p| p.topic == "F")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pulls = broker
        .state
        .pulls
        .lock()
        .iter()
        .filter(|p| p.topic == "F")
        .count();
    assert!(pulls <= 3, "pulled {pulls} times with a full cache");
    gate.add_permits(1000);
    consumer.shutdown().await;
}

#[tokio::test]
async fn a_new_member_triggers_rebalance_through_notify() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 4)]).await;
    let mut slow = fast_client(&namesrv, "DEFAULT");
    slow.rebalance_interval = Duration::from_secs(600);
    let seen = Seen::default();
    let first = PushConsumer::builder()
        .client_config(slow.clone())
        .group("cg")
        .subscribe("T", "*")
        .listener_concurrently(recording(&seen, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "alone: four queues", || {
        first
            .assigned_queues()
            .iter()
            .filter(|q| q.topic == "T")
            .count()
            == 4
    })
    .await;
    let second = PushConsumer::builder()
        .client_config(slow)
        .group("cg")
        .subscribe("T", "*")
        .listener_concurrently(recording(&seen, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "split two and two without waiting for the period",
        || {
            first
                .assigned_queues()
                .iter()
                .filter(|q| q.topic == "T")
                .count()
                == 2
                && second
                    .assigned_queues()
                    .iter()
                    .filter(|q| q.topic == "T")
                    .count()
                    == 2
        },
    )
    .await;
    assert_eq!(broker.consumer_ids("cg").len(), 2);
    second.shutdown().await;
    eventually(
        Duration::from_secs(5),
        "back to four after the member left",
        || {
            first
                .assigned_queues()
                .iter()
                .filter(|q| q.topic == "T")
                .count()
                == 4
        },
    )
    .await;
    first.shutdown().await;
}

#[tokio::test]
async fn brokers_can_ask_for_running_info_and_reset_offsets() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    fill(&broker, "T", 1, 5, "x");
    let seen = Seen::default();
    let consumer = builder(&namesrv, "cg")
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(recording(&seen, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "five", || seen.lock().len() == 5).await;
    let channel = broker.state.members.lock().consumers["cg"]
        .values()
        .next()
        .cloned()
        .unwrap();
    let header = GetConsumerRunningInfoRequestHeader {
        consumer_group: "cg".into(),
        client_id: consumer.client_id().into(),
        jstack_enable: false,
    };
    let request =
        RemotingCommand::request_with_header(RequestCode::GetConsumerRunningInfo, &header).unwrap();
    let response = channel
        .invoke(request, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(response.response_code(), ResponseCode::Success);
    let info: ConsumerRunningInfo =
        fastjson::from_slice(&response.body.to_bytes(), "info").unwrap();
    assert_eq!(info.properties["consumeType"], "CONSUME_PASSIVELY");
    assert!(
        info.mq_table
            .keys()
            .any(|k| k.0 == MessageQueue::new("T", "broker-a", 0))
    );

    // RESET_CONSUMER_CLIENT_OFFSET back to 1: messages 1..5 come again.
    let mut body = karman_protocol::body::ResetOffsetBody::default();
    body.offset_table.insert(
        karman_protocol::body::fastjson::ObjectKey(MessageQueue::new("T", "broker-a", 0)),
        1,
    );
    let header = karman_protocol::header::ResetOffsetRequestHeader {
        topic: "T".into(),
        group: "cg".into(),
        timestamp: 0,
        is_force: false,
        queue_id: -1,
        offset: None,
    };
    let request =
        RemotingCommand::request_with_header(RequestCode::ResetConsumerClientOffset, &header)
            .unwrap()
            .with_body(fastjson::to_vec(&body));
    channel.invoke_oneway(request).await.unwrap();
    eventually(WAIT, "re-consumed after the reset", || {
        seen.lock().len() == 9
    })
    .await;
    let again: BTreeMap<i64, usize> =
        seen.lock()[5..].iter().fold(BTreeMap::new(), |mut m, msg| {
            *m.entry(msg.queue_offset).or_default() += 1;
            m
        });
    assert_eq!(again.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4]);
    consumer.shutdown().await;
}

#[tokio::test]
async fn sql92_subscriptions_are_checked_with_the_broker_at_start() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("S", 1)]).await;
    let seen = Seen::default();
    let consumer = builder(&namesrv, "sql")
        .subscribe_sql92("S", "region = 'eu'")
        .listener_concurrently(recording(&seen, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await
        .unwrap();
    assert_eq!(broker.state.client_checks.load(Ordering::SeqCst), 1);
    let sub = broker
        .state
        .heartbeats
        .lock()
        .last()
        .unwrap()
        .consumer_data_set[0]
        .subscription_data_set
        .iter()
        .find(|s| s.topic == "S")
        .cloned()
        .unwrap();
    assert_eq!(sub.expression_type.as_deref(), Some("SQL92"));
    assert_eq!(sub.sub_string, "region = 'eu'");
    consumer.shutdown().await;

    broker.state.refuse_sql92.store(true, Ordering::SeqCst);
    let refused = builder(&namesrv, "sql2")
        .subscribe_sql92("S", "region = 'eu'")
        .listener_concurrently(recording(&seen, ConsumeConcurrentlyStatus::ConsumeSuccess))
        .start()
        .await;
    let error = refused.unwrap_err();
    assert_eq!(
        error.response_code(),
        Some(ResponseCode::SystemError),
        "{error}"
    );
    assert!(
        broker
            .state
            .unregistered
            .lock()
            .iter()
            .any(|u| u.consumer_group.as_deref() == Some("sql2"))
    );
}

#[tokio::test]
async fn a_stuck_listener_call_times_out_and_is_sent_back() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    broker.put("T", 0, b"stuck", &[("UNIQ_KEY", "S")].into_iter().collect());
    broker.put("T", 0, b"fine", &[("UNIQ_KEY", "F")].into_iter().collect());
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let config = karman_client::consumer::PushConsumerConfig {
        consume_timeout: Duration::from_millis(300),
        await_termination_when_shutdown: Duration::from_millis(100),
        ..Default::default()
    };
    let consumer = builder(&namesrv, "cg")
        .consumer_config(config)
        .subscribe("T", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |messages| {
            let first = first.clone();
            async move {
                if &messages[0].body[..] == b"stuck" && first.swap(false, Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await
        .unwrap();
    eventually(
        WAIT,
        "the stuck message sent back with delay level 3",
        || {
            broker
                .state
                .send_backs
                .lock()
                .iter()
                .any(|b| b.delay_level == 3 && b.origin_msg_id.as_deref() == Some("S"))
        },
    )
    .await;
    eventually(WAIT, "the offset moves past the stuck message", || {
        broker.consumer_offset("cg", "T", 0) == Some(2)
    })
    .await;
    consumer.shutdown().await;
}

#[tokio::test]
async fn topic_thresholds_are_split_over_the_owned_queues() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("G", 2)]).await;
    fill(&broker, "G", 2, 100, "x");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gate2 = gate.clone();
    let config = karman_client::consumer::PushConsumerConfig {
        pull_batch_size: 4,
        pull_threshold_for_topic: Some(10),
        consume_thread_count: 1,
        await_termination_when_shutdown: Duration::from_millis(100),
        ..Default::default()
    };
    let consumer = builder(&namesrv, "topicflow")
        .consumer_config(config)
        .subscribe("G", "*")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .listener_concurrently(concurrently(move |_| {
            let gate = gate2.clone();
            async move {
                let _ = gate.acquire().await;
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }))
        .start()
        .await
        .unwrap();
    eventually(WAIT, "both queues pulled", || {
        let pulls = broker.state.pulls.lock();
        (0..2).all(|q| pulls.iter().any(|p| p.topic == "G" && p.queue_id == q))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for q in 0..2 {
        let pulls = broker
            .state
            .pulls
            .lock()
            .iter()
            .filter(|p| p.topic == "G" && p.queue_id == q)
            .count();
        // 10 for the topic over 2 queues = 5 each: two pulls of 4 fill a queue's share.
        assert!(pulls <= 2, "queue {q} pulled {pulls} times");
    }
    gate.add_permits(1000);
    consumer.shutdown().await;
}
