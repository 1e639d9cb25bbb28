//! The admin API against a real NameServer and a real broker, for the calls `karman admin`
//! needs beyond the fake broker's reach: why a topic has no route, topic configs and
//! attributes, one-shot pulls, per-queue offset resets, and who consumes or produces.

use std::time::Duration;

use karman_broker::{BrokerConfig, BrokerHandle};
use karman_client::admin::{Admin, NoRouteCause, OffsetReset, ResetTarget, TOOLS_CONSUMER_GROUP};
use karman_client::consumer::PullStatus;
use karman_client::producer::Producer;
use karman_client::{ClientConfig, Message, MessageQueue};
use karman_namesrv::{NamesrvConfig, NamesrvHandle};
use karman_protocol::body::TopicConfig;

async fn start_namesrv(dir: &tempfile::TempDir) -> NamesrvHandle {
    karman_namesrv::start(NamesrvConfig {
        bind_address: "127.0.0.1".parse().unwrap(),
        listen_port: 0,
        kv_config_path: dir.path().join("kvConfig.json"),
        ..NamesrvConfig::default()
    })
    .await
    .unwrap()
}

async fn start_broker(dir: &tempfile::TempDir, namesrv: &NamesrvHandle) -> BrokerHandle {
    let mut config = BrokerConfig::default();
    let loopback = "127.0.0.1".parse().unwrap();
    config.bind_address = loopback;
    config.broker_ip1 = loopback;
    config.broker_ip2 = loopback;
    config.listen_port = 0;
    config.broker_name = "broker-a".into();
    config.namesrv_addr = Some(namesrv.local_addr().to_string());
    config.store.store_path_root_dir = dir.path().join("store");
    config.store.mapped_file_size_commit_log_bytes = 4 << 20;
    config.store.mapped_file_size_consume_queue_bytes = 20 * 1000;
    config.store.max_hash_slot_count = 1000;
    config.store.max_index_count = 4000;
    karman_broker::start(config).await.unwrap()
}

fn client(namesrv: &NamesrvHandle) -> ClientConfig {
    ClientConfig {
        namesrv_addr: namesrv.local_addr().to_string(),
        api_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn diagnose_no_route_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let admin = Admin::with_config(client(&namesrv)).await.unwrap();
    assert_eq!(
        admin.diagnose_no_route("T").await.unwrap(),
        NoRouteCause::NoBrokerRegistered
    );

    let broker = start_broker(&dir, &namesrv).await;
    assert_eq!(
        admin.diagnose_no_route("T").await.unwrap(),
        NoRouteCause::TopicMissing {
            auto_create_on: vec!["broker-a".into()],
            auto_create_off: vec![],
            unreachable: vec![],
        }
    );
    admin
        .update_broker_config(
            broker.broker_addr(),
            &[("autoCreateTopicEnable".to_owned(), "false".to_owned())].into(),
        )
        .await
        .unwrap();
    assert_eq!(
        admin.diagnose_no_route("T").await.unwrap(),
        NoRouteCause::TopicMissing {
            auto_create_on: vec![],
            auto_create_off: vec!["broker-a".into()],
            unreachable: vec![],
        }
    );

    admin.shutdown().await;
    broker.shutdown().await;
    namesrv.shutdown().await;
}

#[tokio::test]
async fn topic_configs_pulls_resets_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker = start_broker(&dir, &namesrv).await;
    let addr = broker.broker_addr().to_owned();
    let admin = Admin::with_config(client(&namesrv)).await.unwrap();

    admin
        .create_topic_with_attributes(&addr, &TopicConfig::new("T", 2, 2, 6), Some("+k=v"))
        .await
        .unwrap();
    let stored = admin.topic_config(&addr, "T").await.unwrap().unwrap();
    assert_eq!(stored.attributes.get("k").map(String::as_str), Some("v"));
    assert_eq!(admin.topic_config(&addr, "Nope").await.unwrap(), None);

    let producer = Producer::builder()
        .client_config(ClientConfig {
            heartbeat_broker_interval: Duration::from_millis(200),
            ..client(&namesrv)
        })
        .group("pg")
        .build()
        .await
        .unwrap();
    let mq = MessageQueue::new("T", "broker-a", 0);
    for (i, tag) in ["TagA", "TagB", "TagA"].iter().enumerate() {
        producer
            .send_to_queue(
                Message::new("T", format!("m{i}")).with_tags(*tag),
                mq.clone(),
            )
            .await
            .unwrap();
    }
    // A send is acknowledged once the commit log has it; the consume queue follows
    // asynchronously, and the pulls below read through it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while admin.max_offset(&mq).await.unwrap() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consume queue never reached 3 messages"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let one = admin
        .pull(TOOLS_CONSUMER_GROUP, &mq, "*", 1, 1)
        .await
        .unwrap();
    assert_eq!(one.status, PullStatus::Found);
    assert_eq!(one.messages.len(), 1);
    assert_eq!(&one.messages[0].body[..], b"m1");
    let tagged = admin
        .pull(TOOLS_CONSUMER_GROUP, &mq, "TagA", 0, 32)
        .await
        .unwrap();
    let offsets: Vec<i64> = tagged.messages.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [0, 2], "the tag expression filters");
    let past_end = admin
        .pull(TOOLS_CONSUMER_GROUP, &mq, "*", 3, 1)
        .await
        .unwrap();
    assert_eq!(
        past_end.status,
        PullStatus::NoNewMsg,
        "answered at once, not held"
    );

    let moved = admin
        .reset_offset(
            std::slice::from_ref(&addr),
            &OffsetReset {
                group: "cg",
                topic: "T",
                queue_id: Some(0),
                target: ResetTarget::Offset(2),
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(moved.into_iter().collect::<Vec<_>>(), [(mq.clone(), 2)]);
    let stats = admin.consume_stats("cg", Some("T")).await.unwrap();
    let q0 = stats
        .offset_table
        .iter()
        .find(|(k, _)| k.0 == mq)
        .map(|(_, o)| (o.broker_offset, o.consumer_offset));
    assert_eq!(q0, Some((3, 2)));
    assert!(
        admin
            .topic_consumer_groups("T")
            .await
            .unwrap()
            .contains("cg"),
        "a group with offsets consumes the topic"
    );

    // A producer shows up once its heartbeat has reached the broker.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let producers = loop {
        match admin.producer_connection("pg", "T").await {
            Ok(found) => break found,
            Err(error) if tokio::time::Instant::now() > deadline => panic!("{error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(producers.connection_set.len(), 1);
    assert!(admin.producer_connection("nobody", "T").await.is_err());
    assert!(admin.consumer_connection_at(&addr, "cg").await.is_err());

    // A lite pull member reports the queues it holds through the broker relay.
    let consumer = karman_client::LitePullConsumer::builder()
        .client_config(client(&namesrv))
        .group("cg")
        .build()
        .await
        .unwrap();
    consumer.subscribe("T", "*").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let connection = loop {
        match admin.consumer_connection("cg").await {
            Ok(found) => break found,
            Err(error) if tokio::time::Instant::now() > deadline => panic!("{error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let client_id = &connection.connection_set.first().unwrap().client_id;
    let info = admin.consumer_running_info("cg", client_id).await.unwrap();
    let held: Vec<i32> = info.mq_table.keys().map(|mq| mq.0.queue_id).collect();
    assert_eq!(held, [0, 1]);
    assert_eq!(info.subscription_set.len(), 1);
    consumer.shutdown().await;

    producer.shutdown().await;
    admin.shutdown().await;
    broker.shutdown().await;
    namesrv.shutdown().await;
}
