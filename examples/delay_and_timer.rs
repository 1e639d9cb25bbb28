//! Scheduled delivery: a delay level (1..18 = 1s 5s 10s 30s 1m … 2h) or, on 5.x brokers,
//! an exact delivery time (timer messages, up to 3 days ahead).
//!
//! `cargo run -p karman-client --example delay_and_timer`
#![allow(clippy::print_stdout)]

use karman_client::{Message, Producer, wall_clock_ms};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .group("example_delay_producer")
        .build()
        .await?;
    // Level 3 = 10 seconds.
    let delayed = producer
        .send(Message::new("DelayTest", "in 10 s").with_delay_level(3))
        .await?;
    println!("delay-level message {} accepted", delayed.msg_id);
    // An absolute time, one minute from now.
    let at = wall_clock_ms() + 60_000;
    let timed = producer
        .send(Message::new("DelayTest", "in 1 min").with_deliver_timestamp_ms(at))
        .await?;
    println!("timer message {} due at {at}", timed.msg_id);
    // Or relative to when the broker stores it.
    producer
        .send(Message::new("DelayTest", "in 5 s").with_delay_ms(5_000))
        .await?;
    producer.shutdown().await;
    Ok(())
}
