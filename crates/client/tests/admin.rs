//! The admin API against a real NameServer and a fake broker: cluster and topic listing,
//! routes, topic creation and stats, KV config, offsets and message queries.

mod support;

use karman_client::admin::Admin;
use karman_client::producer::Producer;
use karman_client::{Message, MessageQueue};
use karman_protocol::body::TopicConfig;
use support::{CLUSTER, FakeBroker, fast_client, init_tracing, start_namesrv};

#[tokio::test]
async fn topics_routes_stats_kv_offsets_and_queries() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start_namesrv(&dir).await;
    let broker =
        FakeBroker::start("broker-a", &namesrv.local_addr().to_string(), &[("T", 2)]).await;
    let admin = Admin::with_config(fast_client(&namesrv, "DEFAULT"))
        .await
        .unwrap();

    let info = admin.cluster_info().await.unwrap();
    assert!(info.cluster_addr_table[CLUSTER].contains("broker-a"));
    assert_eq!(
        admin.cluster_masters(CLUSTER).await.unwrap(),
        [broker.addr()]
    );
    assert!(admin.topic_list().await.unwrap().contains("T"));
    assert_eq!(
        admin.topic_route("T").await.unwrap().queue_datas[0].write_queue_nums,
        2
    );
    assert!(admin.topic_route("Nope").await.is_err());

    admin
        .create_topic_in_cluster(CLUSTER, &TopicConfig::new("Made", 3, 3, 6))
        .await
        .unwrap();
    assert_eq!(
        admin.topic_route("Made").await.unwrap().queue_datas[0].read_queue_nums,
        3
    );

    let producer = Producer::builder()
        .client_config(fast_client(&namesrv, "DEFAULT"))
        .group("pg")
        .build()
        .await
        .unwrap();
    let sent = producer
        .send_to_queue(
            Message::new("T", "find me").with_keys(["order-7"]),
            MessageQueue::new("T", "broker-a", 1),
        )
        .await
        .unwrap();
    let stats = admin.topic_stats("T").await.unwrap();
    let q1 = stats
        .offset_table
        .iter()
        .find(|(k, _)| k.0.queue_id == 1)
        .unwrap()
        .1;
    assert_eq!(q1.max_offset, 1);
    let mq = MessageQueue::new("T", "broker-a", 1);
    assert_eq!(admin.max_offset(&mq).await.unwrap(), 1);
    assert_eq!(admin.min_offset(&mq).await.unwrap(), 0);

    let viewed = admin.view_message(&sent.offset_msg_id).await.unwrap();
    assert_eq!(&viewed.body[..], b"find me");
    let by_key = admin
        .query_message_by_key("T", "order-7", 64, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    let by_id = admin
        .query_message_by_unique_key("T", &sent.msg_id)
        .await
        .unwrap();
    assert_eq!(by_id[0].msg_id(), sent.msg_id);
    assert!(
        admin
            .query_message_by_key("T", "absent", 64, 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );

    admin
        .put_kv_config("ORDER_TOPIC_CONFIG", "T", "broker-a:2")
        .await
        .unwrap();
    assert_eq!(
        admin
            .get_kv_config("ORDER_TOPIC_CONFIG", "T")
            .await
            .unwrap()
            .as_deref(),
        Some("broker-a:2")
    );
    admin
        .delete_kv_config("ORDER_TOPIC_CONFIG", "T")
        .await
        .unwrap();
    assert_eq!(
        admin
            .get_kv_config("ORDER_TOPIC_CONFIG", "T")
            .await
            .unwrap(),
        None
    );

    let wiped = admin.set_write_perm("broker-a", false).await.unwrap();
    assert!(wiped[0].1 >= 2, "{wiped:?}");
    admin.set_write_perm("broker-a", true).await.unwrap();

    producer.shutdown().await;
    admin.shutdown().await;
}
