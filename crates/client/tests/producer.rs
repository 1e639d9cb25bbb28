//! Producer behaviour against a real NameServer and fake brokers: results and ids, retries
//! on another broker, the send budget, async/oneway/batch/ordered sends, compression,
//! auto-created topics, fault tolerance, heartbeats and shutdown.

mod support;

use std::time::Duration;

use karman_client::producer::{Producer, ProducerConfig, SendStatus};
use karman_client::{ClientError, Message};
use karman_protocol::ResponseCode;
use karman_protocol::message::id::parse_offset_msg_id;
use support::{CountingNamesrv, FakeBroker, eventually, fast_client, init_tracing, start_namesrv};
use tokio::time::Instant;

async fn producer(namesrv: &karman_namesrv::NamesrvHandle, config: ProducerConfig) -> Producer {
    Producer::builder()
        .client_config(fast_client(namesrv, "DEFAULT"))
        .producer_config(config)
        .build()
        .await
        .unwrap()
}

fn group(name: &str) -> ProducerConfig {
    ProducerConfig {
        group: name.into(),
        ..ProducerConfig::default()
    }
}

#[tokio::test]
async fn sync_send_returns_ids_queue_and_offset_of_the_stored_message() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 4)]).await;
    let producer = producer(&namesrv, group("pg")).await;

    let result = producer
        .send(
            Message::new("T", "hello")
                .with_tags("TagA")
                .with_keys(["order-1"]),
        )
        .await
        .unwrap();
    assert_eq!(result.status, SendStatus::SendOk);
    let stored = broker.messages("T");
    assert_eq!(stored.len(), 1);
    let message = &stored[0];
    assert_eq!(message.properties.uniq_key(), Some(result.msg_id.as_str()));
    assert_eq!(result.msg_id.len(), 32, "IPv4 UNIQ_KEY is 32 hex digits");
    let (addr, commit_log_offset) = parse_offset_msg_id(&result.offset_msg_id).unwrap();
    assert_eq!(addr, broker.state.addr);
    assert_eq!(commit_log_offset, message.commit_log_offset);
    assert_eq!(
        (result.queue.queue_id, result.queue_offset),
        (message.queue_id, 0)
    );
    assert_eq!(result.queue.broker_name, "broker-a");
    assert_eq!(message.tags(), Some("TagA"));
    assert_eq!(message.keys().collect::<Vec<_>>(), ["order-1"]);
    assert_eq!(message.properties.get("WAIT"), Some("true"));
    assert_eq!(result.region_id.as_deref(), Some("DefaultRegion"));

    eventually(
        Duration::from_secs(3),
        "a heartbeat once the route named the broker",
        || !broker.state.heartbeats.lock().is_empty(),
    )
    .await;
    let heartbeat = broker.state.heartbeats.lock().last().cloned().unwrap();
    let groups: Vec<_> = heartbeat
        .producer_data_set
        .iter()
        .map(|p| p.group_name.as_str())
        .collect();
    assert_eq!(groups, ["CLIENT_INNER_PRODUCER", "pg"]);
    assert!(
        heartbeat.client_id.starts_with("127.0.0.1@"),
        "{}",
        heartbeat.client_id
    );

    producer.shutdown().await;
    let unregistered = broker.state.unregistered.lock().clone();
    assert!(
        unregistered
            .iter()
            .any(|u| u.producer_group.as_deref() == Some("pg"))
    );
    assert!(matches!(
        producer.send(Message::new("T", "x")).await,
        Err(ClientError::Shutdown { .. })
    ));
}

/// A producer's first sends all miss the route cache: one of them asks the NameServer and
/// the rest use its answer, instead of a round trip each, one after another.
#[tokio::test]
async fn sends_that_start_together_ask_for_the_route_once() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let _broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 4)]).await;
    let counting = CountingNamesrv::start(&namesrv).await;
    let producer = Producer::builder()
        .client_config(karman_client::ClientConfig {
            namesrv_addr: counting.addr(),
            // No periodic refresh during the test: only the sends ask.
            poll_name_server_interval: Duration::from_secs(600),
            ..fast_client(&namesrv, "DEFAULT")
        })
        .producer_config(group("pg"))
        .build()
        .await
        .unwrap();
    let sends = (0..256).map(|i| producer.send(Message::new("T", format!("m{i}"))));
    for result in futures::future::join_all(sends).await {
        assert_eq!(result.unwrap().status, SendStatus::SendOk);
    }
    assert_eq!(counting.route_requests("T"), 1);
    producer.shutdown().await;
}

#[tokio::test]
async fn system_busy_is_retried_on_the_other_broker() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let ns = namesrv.local_addr().to_string();
    let a = FakeBroker::start("broker-a", &ns, &[("T", 2)]).await;
    let b = FakeBroker::start("broker-b", &ns, &[("T", 2)]).await;
    a.script_sends(&[ResponseCode::SystemBusy; 20]);
    let producer = producer(&namesrv, group("pg")).await;
    for i in 0..6 {
        let result = producer
            .send(Message::new("T", format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(result.queue.broker_name, "broker-b");
    }
    assert_eq!(b.messages("T").len(), 6);
    assert!(a.sends() >= 1, "round robin must have tried broker-a");
    assert!(a.sends() <= 6, "each message tries broker-a at most once");
    producer.shutdown().await;
}

#[tokio::test]
async fn non_retryable_codes_fail_at_once() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let ns = namesrv.local_addr().to_string();
    let a = FakeBroker::start("broker-a", &ns, &[("T", 2)]).await;
    let b = FakeBroker::start("broker-b", &ns, &[("T", 2)]).await;
    a.script_sends(&[ResponseCode::MessageIllegal]);
    b.script_sends(&[ResponseCode::MessageIllegal]);
    let producer = producer(&namesrv, group("pg")).await;
    let error = producer.send(Message::new("T", "x")).await.unwrap_err();
    assert_eq!(
        error.response_code(),
        Some(ResponseCode::MessageIllegal),
        "{error}"
    );
    assert_eq!(a.sends() + b.sends(), 1);
    producer.shutdown().await;
}

#[tokio::test]
async fn the_send_timeout_is_a_budget_over_all_attempts() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 2)]).await;
    let producer = producer(&namesrv, group("pg")).await;
    producer.fetch_publish_queues("T").await.unwrap();
    *broker.state.send_delay.lock() = Duration::from_millis(400);
    let config = ProducerConfig {
        send_timeout: Duration::from_millis(1000),
        ..group("pg2")
    };
    let slow = self::producer(&namesrv, config).await;
    // Each attempt takes 400 ms and answers SYSTEM_BUSY: three attempts need 1.2 s > 1 s.
    broker.script_sends(&[ResponseCode::SystemBusy; 3]);
    let started = Instant::now();
    let error = slow.send(Message::new("T", "x")).await.unwrap_err();
    let elapsed = started.elapsed();
    // The third attempt gets what is left of the budget and times out in transport, or
    // finds the budget already spent; either way the caller hears back within it.
    assert!(
        matches!(
            error,
            ClientError::SendTimeout { .. } | ClientError::SendFailed { attempts: 3, .. }
        ),
        "{error}"
    );
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(broker.sends(), 3);
    // An attempt longer than the whole budget times out in transport.
    *broker.state.send_delay.lock() = Duration::from_secs(3);
    let error = slow.send(Message::new("T", "y")).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::SendTimeout { .. } | ClientError::SendFailed { .. }
        ),
        "{error}"
    );
    slow.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test]
async fn async_oneway_batch_and_ordered_sends() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker = FakeBroker::start(
        "broker-a",
        &namesrv.local_addr().to_string(),
        &[("T", 4), ("B", 1), ("O", 4)],
    )
    .await;
    let config = ProducerConfig {
        batch_bytes_max: 300,
        ..group("pg")
    };
    let producer = producer(&namesrv, config).await;

    let handles: Vec<_> = futures::future::join_all(
        (0..5).map(|i| producer.send_async(Message::new("T", format!("a{i}")))),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    for handle in handles {
        assert_eq!(handle.await.unwrap().status, SendStatus::SendOk);
    }

    producer
        .send_oneway(Message::new("T", "oneway"))
        .await
        .unwrap();
    eventually(Duration::from_secs(3), "oneway stored", || {
        broker.messages("T").len() == 6
    })
    .await;

    let batch: Vec<_> = (0..6)
        .map(|i| Message::new("B", vec![b'0' + i; 60]).with_tags("bt"))
        .collect();
    let results = producer.send_batch(batch).await.unwrap();
    assert!(
        results.len() >= 2,
        "300-byte limit must split 6 x ~150-byte entries"
    );
    let stored = broker.messages("B");
    assert_eq!(stored.len(), 6);
    let ids: Vec<String> = results
        .iter()
        .flat_map(|r| r.msg_id.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let stored_ids: Vec<String> = stored
        .iter()
        .map(|m| m.properties.uniq_key().unwrap().to_owned())
        .collect();
    assert_eq!(ids, stored_ids);
    assert!(stored.iter().all(|m| m.tags() == Some("bt")));
    assert_eq!(
        stored.iter().map(|m| m.body[0]).collect::<Vec<_>>(),
        b"012345"
    );

    let mut queues = std::collections::BTreeSet::new();
    for i in 0..8 {
        let result = producer
            .send_ordered(Message::new("O", format!("step {i}")), "order-42")
            .await
            .unwrap();
        queues.insert(result.queue.queue_id);
    }
    assert_eq!(queues.len(), 1, "one sharding key, one queue");
    let queue = *queues.iter().next().unwrap();
    // Java: abs("order-42".hashCode() % 4).
    let expected = (karman_protocol::message::java_string_hash("order-42") % 4).abs();
    assert_eq!(queue, expected);
    let bodies: Vec<_> = broker
        .messages("O")
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(
        bodies,
        (0..8).map(|i| format!("step {i}")).collect::<Vec<_>>()
    );
    producer.shutdown().await;
}

#[tokio::test]
async fn big_bodies_are_compressed_delay_and_timer_properties_travel() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    let producer = producer(&namesrv, group("pg")).await;
    producer
        .send(Message::new("T", vec![b'z'; 10_000]))
        .await
        .unwrap();
    producer
        .send(Message::new("T", "later").with_delay_level(3))
        .await
        .unwrap();
    producer
        .send(Message::new("T", "at").with_deliver_timestamp_ms(1_900_000_000_000))
        .await
        .unwrap();
    let stored = broker.state.queues.lock()[&("T".to_owned(), 0)].clone();
    // The fake stores sysFlag 0; the request header carried it, so check the body instead.
    assert!(
        stored[0].message.body.len() < 200,
        "body travelled compressed"
    );
    let inflated =
        karman_protocol::message::compress::decompress(&stored[0].message.body, 0x301, 1 << 20)
            .unwrap();
    assert_eq!(inflated, vec![b'z'; 10_000]);
    assert_eq!(stored[1].message.properties.get("DELAY"), Some("3"));
    assert_eq!(
        stored[2].message.properties.get("TIMER_DELIVER_MS"),
        Some("1900000000000")
    );
    producer.shutdown().await;
}

#[tokio::test]
async fn unknown_topics_use_the_tbw102_template() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker = FakeBroker::start(
        "broker-a",
        &namesrv.local_addr().to_string(),
        &[("TBW102", 8)],
    )
    .await;
    let producer = producer(&namesrv, group("pg")).await;
    let result = producer
        .send(Message::new("BrandNew", "first"))
        .await
        .unwrap();
    assert!(
        result.queue.queue_id < 4,
        "clamped to defaultTopicQueueNums"
    );
    assert_eq!(broker.state.topics.lock().get("BrandNew"), Some(&4));
    assert_eq!(broker.messages("BrandNew").len(), 1);
    producer.shutdown().await;
}

#[tokio::test]
async fn latency_fault_tolerance_isolates_a_failing_broker() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let ns = namesrv.local_addr().to_string();
    let a = FakeBroker::start("broker-a", &ns, &[("T", 1)]).await;
    let b = FakeBroker::start("broker-b", &ns, &[("T", 1)]).await;
    let config = ProducerConfig {
        send_latency_fault_enable: true,
        ..group("pg")
    };
    let mut client = fast_client(&namesrv, "DEFAULT");
    client.language = karman_protocol::LanguageCode::Rust;
    let producer = Producer::builder()
        .client_config(client)
        .producer_config(config)
        .build()
        .await
        .unwrap();
    a.script_sends(&[ResponseCode::SystemBusy]);
    b.script_sends(&[ResponseCode::SystemBusy]);
    // The first send fails on one broker and succeeds on the other; that broker is now
    // isolated for 10 s, so every later send avoids it.
    let first = producer.send(Message::new("T", "0")).await.unwrap();
    let healthy = first.queue.broker_name.clone();
    let sends_before = a.sends() + b.sends();
    for i in 1..8 {
        let result = producer
            .send(Message::new("T", i.to_string()))
            .await
            .unwrap();
        assert_eq!(result.queue.broker_name, healthy);
    }
    assert_eq!(a.sends() + b.sends(), sends_before + 7);
    eventually(Duration::from_secs(3), "heartbeat", || {
        !a.state.heartbeat_languages.lock().is_empty()
    })
    .await;
    assert_eq!(
        a.state.heartbeat_languages.lock()[0],
        karman_protocol::LanguageCode::Rust
    );
    producer.shutdown().await;
}

#[tokio::test]
async fn invalid_messages_and_settings_are_refused_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 1)]).await;
    let producer = producer(&namesrv, group("pg")).await;
    assert!(matches!(
        producer.send(Message::new("T", "")).await,
        Err(ClientError::InvalidMessage { .. })
    ));
    assert!(matches!(
        producer.send(Message::new("bad topic", "x")).await,
        Err(ClientError::InvalidMessage { .. })
    ));
    let big = Message::new("T", vec![0u8; 4 * 1024 * 1024 + 1]);
    assert!(matches!(
        producer.send(big).await,
        Err(ClientError::InvalidMessage { .. })
    ));
    assert_eq!(broker.sends(), 0);
    let refused = Producer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("bad/group")
        .build()
        .await;
    assert!(matches!(
        refused,
        Err(ClientError::InvalidConfig { field: "group", .. })
    ));
    producer.shutdown().await;
}
