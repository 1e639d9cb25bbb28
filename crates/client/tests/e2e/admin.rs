//! karman-client's `Admin` against the real broker: the JSON bodies the broker writes
//! (cluster info, topic stats, connections, consume stats, runtime info, reset offsets)
//! decode, and say what happened. The fake broker of the other client tests writes its
//! own bodies; only the real one can tell that both sides agree.

use std::collections::BTreeMap;
use std::time::Duration;

use karman_client::Message;
use karman_protocol::body::SubscriptionGroupConfig;

use crate::harness::{Cluster, Collector, PROMPT, now_ms, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reads_and_changes_what_the_broker_has() {
    let cluster = Cluster::start("admin").await;
    let admin = cluster.admin();
    let broker = cluster.broker_addr();
    let topic = unique("AdminTopic");
    cluster.create_topic(&topic, 2).await;

    let info = admin.cluster_info().await.expect("cluster info");
    assert!(
        info.cluster_addr_table["E2eCluster"].contains(cluster.broker_name()),
        "{info:?}"
    );
    let masters = admin.cluster_masters("E2eCluster").await.expect("masters");
    assert_eq!(masters, std::slice::from_ref(&broker));
    assert!(
        admin
            .topic_list()
            .await
            .expect("topic list")
            .contains(&topic)
    );

    let producer_group = unique("admin_pg");
    let producer = cluster.producer(&producer_group).await;
    let start_ms = now_ms();
    for i in 0..6 {
        producer
            .send(Message::new(&topic, format!("m{i}")))
            .await
            .expect("send");
    }
    let stats = admin.topic_stats(&topic).await.expect("topic stats");
    let total: i64 = stats.offset_table.values().map(|o| o.max_offset).sum();
    assert_eq!(total, 6, "{stats:?}");
    let producers = admin
        .producer_connection(&producer_group, &topic)
        .await
        .expect("producer connection");
    assert_eq!(producers.connection_set.len(), 1, "{producers:?}");

    let group = unique("admin_cg");
    let collector = Collector::new();
    let consumer = cluster
        .recording_consumer(&group, "c", &topic, "*", &collector, |b| b)
        .await;
    assert!(collector.wait_count(6, PROMPT).await);
    let connection = admin
        .consumer_connection(&group)
        .await
        .expect("consumer connection");
    assert_eq!(connection.connection_set.len(), 1, "{connection:?}");
    assert!(
        connection.subscription_table.contains_key(&topic),
        "{connection:?}"
    );
    // The consumer commits within its persist interval; the stats then show no lag.
    let deadline = tokio::time::Instant::now() + PROMPT;
    loop {
        let stats = admin
            .consume_stats(&group, Some(&topic))
            .await
            .expect("consume stats");
        if stats.offset_table.len() == 2
            && stats
                .offset_table
                .values()
                .all(|o| o.consumer_offset == o.broker_offset)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "consume stats never showed the group caught up: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.shutdown().await;

    // Reset the group to before the first send: every queue goes back to 0, and a new
    // member of the group consumes everything again.
    let reset = admin
        .reset_offset_by_timestamp(&group, &topic, start_ms - 1_000, true)
        .await
        .expect("reset offsets");
    assert_eq!(reset.len(), 2, "{reset:?}");
    assert!(reset.values().all(|o| *o == 0), "{reset:?}");
    let again = Collector::new();
    let consumer = cluster
        .recording_consumer(&group, "again", &topic, "*", &again, |b| b)
        .await;
    assert!(again.wait_count(6, PROMPT).await, "{:?}", again.bodies());
    consumer.shutdown().await;

    // Subscription groups, runtime info and config.
    let managed = unique("admin_managed_cg");
    admin
        .create_subscription_group(&broker, &SubscriptionGroupConfig::new(&managed))
        .await
        .expect("create subscription group");
    admin
        .delete_subscription_group(&broker, &managed, true)
        .await
        .expect("delete subscription group");
    let runtime = admin
        .broker_runtime_info(&broker)
        .await
        .expect("runtime info");
    assert!(!runtime.is_empty());
    let config = admin.broker_config(&broker).await.expect("broker config");
    assert!(config.contains("brokerName="), "{config}");
    admin
        .update_broker_config(
            &broker,
            &BTreeMap::from([("transactionCheckMax".to_owned(), "7".to_owned())]),
        )
        .await
        .expect("update broker config");
    let config = admin.broker_config(&broker).await.expect("broker config");
    assert!(config.contains("transactionCheckMax=7"), "{config}");

    admin
        .delete_topic("E2eCluster", &topic)
        .await
        .expect("delete topic");
    assert!(
        !admin
            .topic_list()
            .await
            .expect("topic list")
            .contains(&topic),
        "the NameServer forgot the topic"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}
