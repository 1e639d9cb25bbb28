//! Lite pull consumer: assign and subscribe modes, poll, seek, manual and automatic
//! commits, and the LITE_PULL_MESSAGE request shape.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use karman_client::consumer::{ConsumeFromWhere, LitePullConsumer, LitePullConsumerConfig};
use karman_client::{MessageExt, MessageQueue};
use karman_protocol::message::Properties;
use support::{FakeBroker, eventually, fast_client, init_tracing, start_namesrv};

async fn poll_until(consumer: &LitePullConsumer, count: usize) -> Vec<MessageExt> {
    let mut all = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while all.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} polled",
            all.len()
        );
        all.extend(consumer.poll(Duration::from_millis(200)).await);
    }
    all
}

fn fill(broker: &FakeBroker, topic: &str, queue: i32, n: usize) {
    for i in 0..n {
        broker.put(
            topic,
            queue,
            format!("{i}").as_bytes(),
            &[("UNIQ_KEY", format!("{queue}-{i}"))]
                .into_iter()
                .collect::<Properties>(),
        );
    }
}

#[tokio::test]
async fn assign_poll_seek_and_commit_sync() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 2)]).await;
    fill(&broker, "T", 0, 5);
    let consumer = LitePullConsumer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("lite")
        .auto_commit(false)
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build()
        .await
        .unwrap();
    let queues = consumer.fetch_message_queues("T").await.unwrap();
    assert_eq!(queues.len(), 2);
    let q0 = MessageQueue::new("T", "broker-a", 0);
    consumer.assign(vec![q0.clone()]).await.unwrap();
    let polled = poll_until(&consumer, 5).await;
    assert_eq!(
        polled.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(consumer.poll(Duration::from_millis(100)).await.is_empty());

    let pull = broker.state.pulls.lock()[0].clone();
    assert_eq!(
        pull.sys_flag, 0x16,
        "lite pull: suspend + subscription + lite bits"
    );
    assert_eq!(pull.max_msg_nums, 10);
    assert_eq!(pull.suspend_timeout_millis, 20_000);

    assert_eq!(
        broker.consumer_offset("lite", "T", 0),
        None,
        "no auto commit"
    );
    consumer.commit_sync().await.unwrap();
    assert_eq!(broker.consumer_offset("lite", "T", 0), Some(5));
    assert_eq!(consumer.committed(&q0).await, 5);

    consumer.seek(&q0, 3).await.unwrap();
    let again = poll_until(&consumer, 2).await;
    assert_eq!(
        again.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
        [3, 4]
    );
    assert!(
        consumer.seek(&q0, 99).await.is_err(),
        "beyond the max offset"
    );
    consumer.seek_to_begin(&q0).await.unwrap();
    assert_eq!(poll_until(&consumer, 5).await.len(), 5);
    consumer.seek_to_end(&q0).await.unwrap();
    fill(&broker, "T", 0, 1);
    let tail = poll_until(&consumer, 1).await;
    assert_eq!(tail[0].queue_offset, 5);

    let mut manual = BTreeMap::new();
    manual.insert(q0.clone(), 2);
    consumer.commit(manual).await.unwrap();
    assert_eq!(broker.consumer_offset("lite", "T", 0), Some(2));
    consumer.shutdown().await;
}

#[tokio::test]
async fn subscribe_mode_rebalances_and_auto_commits() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 2)]).await;
    fill(&broker, "T", 0, 3);
    fill(&broker, "T", 1, 3);
    let config = LitePullConsumerConfig {
        auto_commit_interval: Duration::from_millis(200),
        consume_from_where: ConsumeFromWhere::ConsumeFromFirstOffset,
        ..LitePullConsumerConfig::default()
    };
    let consumer = LitePullConsumer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("lite")
        .consumer_config(config)
        .build()
        .await
        .unwrap();
    consumer.subscribe("T", "*").await.unwrap();
    assert_eq!(consumer.assignment().len(), 2);
    assert_eq!(poll_until(&consumer, 6).await.len(), 6);
    eventually(Duration::from_secs(5), "auto commit", || {
        broker.consumer_offset("lite", "T", 0) == Some(3)
            && broker.consumer_offset("lite", "T", 1) == Some(3)
    })
    .await;
    let heartbeat = broker.state.heartbeats.lock().last().cloned().unwrap();
    assert_eq!(
        heartbeat.consumer_data_set[0].consume_type,
        karman_protocol::body::ConsumeType::ConsumeActively
    );
    assert!(
        consumer.assign(vec![]).await.is_err(),
        "subscribe and assign do not mix"
    );
    consumer.shutdown().await;
}

/// Regression: `subscribe` runs a rebalance round itself while the instance's rebalance
/// service runs another (woken by the broker's NOTIFY_CONSUMER_IDS_CHANGED after the
/// subscribe heartbeat, or by its period). Both saw a queue unowned and both took it, so
/// it had two pull tasks and every message of it was polled twice.
#[tokio::test]
async fn concurrent_rebalance_rounds_take_each_queue_once() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 4)]).await;
    for queue in 0..4 {
        fill(&broker, "T", queue, 5);
    }
    let consumer = LitePullConsumer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("lite")
        .consume_from(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build()
        .await
        .unwrap();
    // Two subscribes of one topic: two rebalance rounds at once, plus the service's.
    let (a, b) = tokio::join!(consumer.subscribe("T", "*"), consumer.subscribe("T", "*"));
    a.unwrap();
    b.unwrap();
    let mut polled = poll_until(&consumer, 20).await;
    polled.extend(consumer.poll(Duration::from_millis(500)).await);
    let mut ids: Vec<String> = polled.iter().map(MessageExt::msg_id).collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(total, 20, "every message once: {ids:?}");
    assert_eq!(consumer.assignment().len(), 4);
    consumer.shutdown().await;
}
