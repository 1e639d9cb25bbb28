//! Sync, async, oneway and batch send; a push consumer receives every message.

use std::collections::BTreeSet;

use karman_interop_tests::{Cluster, Collector, PROMPT, bodies, counts, unique};
use rocketmq_model::result::SendStatus;
use tokio::sync::mpsc;

use super::{message, producer, recording_consumer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_async_oneway_and_batch_sends_all_reach_a_push_consumer() {
    let cluster = Cluster::start("send").await;
    let topic = unique("SendTopic");
    cluster.create_topic(&topic, 4).await;
    let producer = producer(&cluster, &unique("send_pg")).await;

    // Sync: every send answers SEND_OK with both ids and a queue of the topic.
    let sync_bodies = bodies("sync", 8);
    let mut sent_ids = BTreeSet::new();
    // body → offsetMsgId the broker answered, to check against what the consumer decodes.
    let mut offset_ids = std::collections::BTreeMap::new();
    // body → (queue id, queue offset) the broker answered.
    let mut positions = std::collections::BTreeMap::new();
    for body in &sync_bodies {
        let result = producer
            .send(message(&topic, "Sync", body))
            .await
            .expect("sync send")
            .expect("sync send returns a result");
        assert_eq!(result.send_status, SendStatus::SendOk, "{result:?}");
        let queue = result
            .message_queue
            .as_ref()
            .expect("result names the queue");
        assert_eq!(queue.topic().as_str(), topic);
        assert!((0..4).contains(&queue.queue_id()), "{result:?}");
        assert!(
            result
                .offset_msg_id
                .as_deref()
                .is_some_and(|id| id.len() == 32),
            "offsetMsgId must be 32 hex chars: {result:?}"
        );
        offset_ids.insert(
            body.clone(),
            result.offset_msg_id.clone().expect("offsetMsgId"),
        );
        positions.insert(body.clone(), (queue.queue_id(), result.queue_offset));
        sent_ids.insert(result.msg_id.expect("msgId").to_string());
    }

    // Async: the callback fires once per message with SEND_OK.
    let async_bodies = bodies("async", 8);
    let (tx, mut rx) = mpsc::channel(async_bodies.len());
    for body in &async_bodies {
        let tx = tx.clone();
        producer
            .send_with_callback(message(&topic, "Async", body), move |result, error| {
                let outcome = match (result, error) {
                    (Some(r), None) => Ok((r.send_status, r.msg_id.clone())),
                    (_, Some(e)) => Err(e.to_string()),
                    (None, None) => Err("callback got neither result nor error".to_owned()),
                };
                let _ = tx.try_send(outcome);
            })
            .await
            .expect("async send accepted");
    }
    drop(tx);
    for _ in &async_bodies {
        let outcome = tokio::time::timeout(PROMPT, rx.recv())
            .await
            .expect("async callback within deadline")
            .expect("one callback per async send");
        let (status, msg_id) = outcome.expect("async send succeeds");
        assert_eq!(status, SendStatus::SendOk);
        sent_ids.insert(msg_id.expect("async msgId").to_string());
    }

    // Oneway: no result; the consumer proves arrival.
    let oneway_bodies = bodies("oneway", 8);
    for body in &oneway_bodies {
        producer
            .send_oneway(message(&topic, "Oneway", body))
            .await
            .expect("oneway send");
    }

    // Batch: one result whose msgId lists every message's id.
    let batch_bodies = bodies("batch", 8);
    let batch = batch_bodies
        .iter()
        .map(|b| message(&topic, "Batch", b))
        .collect::<Vec<_>>();
    let result = producer.send_batch(batch).await.expect("batch send");
    assert_eq!(result.send_status, SendStatus::SendOk, "{result:?}");
    let batch_ids: Vec<String> = result
        .msg_id
        .as_ref()
        .expect("batch msgId")
        .as_str()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(batch_ids.len(), batch_bodies.len(), "{result:?}");
    let batch_offset_ids: Vec<String> = result
        .offset_msg_id
        .clone()
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(
        batch_offset_ids.len(),
        batch_bodies.len(),
        "one offsetMsgId per batched message: {result:?}"
    );
    offset_ids.extend(batch_bodies.iter().cloned().zip(batch_offset_ids));
    // A batch lands in one queue at consecutive offsets from the answered one.
    let batch_queue = result
        .message_queue
        .as_ref()
        .expect("batch queue")
        .queue_id();
    for (i, body) in batch_bodies.iter().enumerate() {
        positions.insert(
            body.clone(),
            (batch_queue, result.queue_offset + u64::try_from(i).unwrap()),
        );
    }
    sent_ids.extend(batch_ids);

    let expected: Vec<String> = [sync_bodies, async_bodies, oneway_bodies, batch_bodies].concat();
    let collector = Collector::new();
    let mut consumer = recording_consumer(
        &cluster,
        &unique("send_cg"),
        "c",
        &topic,
        "*",
        &collector,
        |b| b,
    )
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
    // Exactly the sent messages, each once (no restart or rebalance happened).
    assert_eq!(
        counts(received.iter().map(|r| r.body.clone())),
        counts(expected.iter().cloned())
    );
    let received_ids: BTreeSet<String> = received
        .iter()
        .filter(|r| !r.body.starts_with("oneway"))
        .map(|r| r.msg_id.clone())
        .collect();
    assert_eq!(
        received_ids, sent_ids,
        "delivered msgIds are the ids the sends returned"
    );
    for r in &received {
        if let Some(&(queue_id, queue_offset)) = positions.get(&r.body) {
            assert_eq!(
                (r.queue_id, u64::try_from(r.queue_offset).unwrap()),
                (queue_id, queue_offset),
                "delivered where the send response said it was stored: {r:?}"
            );
        }
        if let Some(offset_id) = offset_ids.get(&r.body) {
            assert_eq!(
                &r.offset_msg_id, offset_id,
                "the offsetMsgId of the send response locates the delivered message: {r:?}"
            );
        }
        assert_eq!(r.topic, topic);
        assert_eq!(r.reconsume_times, 0);
        let expected_tag = match r.body.split('-').next() {
            Some("sync") => "Sync",
            Some("async") => "Async",
            Some("oneway") => "Oneway",
            _ => "Batch",
        };
        assert_eq!(r.tags.as_deref(), Some(expected_tag), "{r:?}");
    }
    let mut producer = producer;
    producer.shutdown().await;
    cluster.shutdown().await;
}
