//! Sync, async, oneway and batch send; a push consumer receives every message, where the
//! send response said it was stored, with the ids the sends returned.

use std::collections::{BTreeMap, BTreeSet};

use karman_client::{Message, SendStatus};

use crate::harness::{Cluster, Collector, PROMPT, bodies, counts, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_async_oneway_and_batch_sends_all_reach_a_push_consumer() {
    let cluster = Cluster::start("send").await;
    let topic = unique("SendTopic");
    cluster.create_topic(&topic, 4).await;
    let producer = cluster.producer(&unique("send_pg")).await;

    let mut sent_ids = BTreeSet::new();
    // body → (queue id, queue offset, offsetMsgId) the broker answered.
    let mut positions: BTreeMap<String, (i32, i64, String)> = BTreeMap::new();

    let sync_bodies = bodies("sync", 8);
    for body in &sync_bodies {
        let result = producer
            .send(Message::new(&topic, body.clone()).with_tags("Sync"))
            .await
            .expect("sync send");
        assert_eq!(result.status, SendStatus::SendOk, "{result:?}");
        assert_eq!(result.queue.topic, topic);
        assert_eq!(result.queue.broker_name, cluster.broker_name());
        assert!((0..4).contains(&result.queue.queue_id), "{result:?}");
        assert_eq!(result.offset_msg_id.len(), 32, "{result:?}");
        assert_eq!(result.msg_id.len(), 32, "{result:?}");
        positions.insert(
            body.clone(),
            (
                result.queue.queue_id,
                result.queue_offset,
                result.offset_msg_id.clone(),
            ),
        );
        sent_ids.insert(result.msg_id);
    }

    // Async: every handle resolves to SEND_OK.
    let async_bodies = bodies("async", 8);
    let mut handles = Vec::new();
    for body in &async_bodies {
        handles.push((
            body.clone(),
            producer
                .send_async(Message::new(&topic, body.clone()).with_tags("Async"))
                .await
                .expect("async send accepted"),
        ));
    }
    for (body, handle) in handles {
        let result = tokio::time::timeout(PROMPT, handle)
            .await
            .expect("async send answered in time")
            .expect("async send succeeds");
        assert_eq!(result.status, SendStatus::SendOk);
        positions.insert(
            body,
            (
                result.queue.queue_id,
                result.queue_offset,
                result.offset_msg_id.clone(),
            ),
        );
        sent_ids.insert(result.msg_id);
    }

    let oneway_bodies = bodies("oneway", 8);
    for body in &oneway_bodies {
        producer
            .send_oneway(Message::new(&topic, body.clone()).with_tags("Oneway"))
            .await
            .expect("oneway send");
    }

    // Batch: one request, one result whose ids list every message.
    let batch_bodies = bodies("batch", 8);
    let batch = batch_bodies
        .iter()
        .map(|b| Message::new(&topic, b.clone()).with_tags("Batch"))
        .collect();
    let results = producer.send_batch(batch).await.expect("batch send");
    assert_eq!(
        results.len(),
        1,
        "a small batch is one request: {results:?}"
    );
    let result = &results[0];
    assert_eq!(result.status, SendStatus::SendOk, "{result:?}");
    let batch_ids: Vec<&str> = result.msg_id.split(',').collect();
    let batch_offset_ids: Vec<&str> = result.offset_msg_id.split(',').collect();
    assert_eq!(batch_ids.len(), batch_bodies.len(), "{result:?}");
    assert_eq!(batch_offset_ids.len(), batch_bodies.len(), "{result:?}");
    for (i, body) in batch_bodies.iter().enumerate() {
        positions.insert(
            body.clone(),
            (
                result.queue.queue_id,
                result.queue_offset + i64::try_from(i).unwrap(),
                batch_offset_ids[i].to_owned(),
            ),
        );
    }
    sent_ids.extend(batch_ids.iter().map(|s| (*s).to_owned()));

    let expected: Vec<String> = [sync_bodies, async_bodies, oneway_bodies, batch_bodies].concat();
    let collector = Collector::new();
    let consumer = cluster
        .recording_consumer(&unique("send_cg"), "c", &topic, "*", &collector, |b| b)
        .await;
    let complete = collector
        .wait_until(PROMPT, |all| {
            let got: BTreeSet<&str> = all.iter().map(|r| r.body.as_str()).collect();
            expected.iter().all(|b| got.contains(b.as_str()))
        })
        .await;
    let received = collector.all();
    consumer.shutdown().await;
    assert!(
        complete,
        "push consumer missed messages: got {:?}",
        counts(received.iter().map(|r| r.body.clone()))
    );
    assert_eq!(
        counts(received.iter().map(|r| r.body.clone())),
        counts(expected.iter().cloned()),
        "every message exactly once (no restart, no rebalance)"
    );
    let received_ids: BTreeSet<String> = received
        .iter()
        .filter(|r| !r.body.starts_with("oneway"))
        .map(|r| r.msg_id.clone())
        .collect();
    assert_eq!(received_ids, sent_ids, "delivered ids are the sent ids");
    for r in &received {
        if let Some((queue_id, queue_offset, offset_id)) = positions.get(&r.body) {
            assert_eq!(
                (r.queue_id, r.queue_offset, &r.offset_msg_id),
                (*queue_id, *queue_offset, offset_id),
                "delivered where the send response said: {r:?}"
            );
        }
        assert_eq!(r.topic, topic);
        assert_eq!(r.reconsume_times, 0);
        let tag = match r.body.split('-').next() {
            Some("sync") => "Sync",
            Some("async") => "Async",
            Some("oneway") => "Oneway",
            _ => "Batch",
        };
        assert_eq!(r.tags.as_deref(), Some(tag), "{r:?}");
    }
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A batch over the broker's 4 MiB request limit is split into requests that each fit,
/// and a body over 4 KiB travels compressed and arrives inflated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_split_and_large_bodies_are_compressed() {
    let cluster = Cluster::start("bigsend").await;
    let topic = unique("BigTopic");
    cluster.create_topic(&topic, 2).await;
    let producer = cluster.producer(&unique("big_pg")).await;

    // 1200 messages of 4000 bytes: about 4.9 MB encoded, more than one request.
    let batch: Vec<Message> = (0..1200)
        .map(|i| Message::new(&topic, format!("{i:04}{}", "b".repeat(3996))))
        .collect();
    let results = producer.send_batch(batch).await.expect("batch send");
    assert!(results.len() >= 2, "split into requests: {}", results.len());
    let sent: usize = results.iter().map(|r| r.msg_id.split(',').count()).sum();
    assert_eq!(sent, 1200);

    let big = "0123456789abcdef".repeat(1024); // 16 KiB, compresses well
    let result = producer
        .send(Message::new(&topic, big.clone()).with_tags("Big"))
        .await
        .expect("big send");
    let stored = cluster
        .admin()
        .view_message(&result.offset_msg_id)
        .await
        .expect("view");
    assert_eq!(stored.sys_flag & 1, 1, "stored compressed");
    assert!(
        stored.body.len() < big.len() / 4,
        "{} bytes",
        stored.body.len()
    );

    let collector = Collector::new();
    let consumer = cluster
        .recording_consumer(&unique("big_cg"), "c", &topic, "*", &collector, |b| b)
        .await;
    let done = collector.wait_count(1201, PROMPT).await;
    let received = collector.all();
    consumer.shutdown().await;
    assert!(done, "{} of 1201", received.len());
    let distinct: BTreeSet<&str> = received.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(distinct.len(), 1201, "each once");
    assert!(
        distinct.contains(big.as_str()),
        "the big body arrives inflated"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}
