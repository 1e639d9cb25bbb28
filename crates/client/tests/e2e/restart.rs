//! A running producer and push consumer ride through a broker restart (clean shutdown,
//! same data, a new port): the clients refresh the route, sends succeed again, and every
//! message sent before and after is consumed (redeliveries counted, not failed).

use std::time::Duration;

use karman_client::{Message, Producer};
use tokio::time::Instant;

use crate::harness::{Cluster, Collector, PROMPT, bodies, counts, unique};

/// Sends `body`, retrying (bounded) while the client still routes to the old address.
async fn send_eventually(producer: &Producer, topic: &str, body: &str) {
    let deadline = Instant::now() + PROMPT;
    loop {
        match producer.send(Message::new(topic, body.to_owned())).await {
            Ok(_) => return,
            Err(error) => {
                assert!(Instant::now() < deadline, "{body} never sent: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_ride_through_a_broker_restart() {
    let mut cluster = Cluster::start("restart").await;
    let topic = unique("RestartTopic");
    cluster.create_topic(&topic, 4).await;
    let collector = Collector::new();
    let consumer = cluster
        .recording_consumer(&unique("restart_cg"), "c", &topic, "*", &collector, |b| b)
        .await;
    let producer = cluster.producer(&unique("restart_pg")).await;
    let before = bodies("before", 20);
    for body in &before {
        send_eventually(&producer, &topic, body).await;
    }
    assert!(
        collector.wait_count(20, PROMPT).await,
        "{:?}",
        collector.bodies()
    );

    cluster.restart_broker(&topic).await;
    let after = bodies("after", 20);
    for body in &after {
        send_eventually(&producer, &topic, body).await;
    }
    let all: Vec<String> = [before, after].concat();
    let done = collector
        .wait_until(PROMPT, |got| {
            let got = counts(got.iter().map(|r| r.body.clone()));
            all.iter().all(|b| got.contains_key(b))
        })
        .await;
    let received = counts(collector.bodies());
    consumer.shutdown().await;
    let redelivered: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!(
        "[e2e] broker restart: {} redelivered: {redelivered:?}",
        redelivered.len()
    );
    assert!(
        done,
        "lost across the restart: {:?}",
        all.iter()
            .filter(|b| !received.contains_key(*b))
            .collect::<Vec<_>>()
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}
