//! `karman bench e2e`: a producer at a fixed rate and a consumer on the same topic; the
//! figure is end-to-end latency, producer send call to consumer listener (born to consume).

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use karman_client::{Message, Producer, PushConsumer};

use super::CommonArgs;
use super::producer::{ProducerArgs, SendMode};
use super::report::{Columns, Reporter, Summary, summary_text};

#[derive(Debug, Clone, Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Topic to send to and consume from (default: a new topic for each run, so the
    /// consumer sees only this run's messages).
    #[arg(short = 't', long)]
    pub topic: Option<String>,

    /// Messages per second.
    #[arg(long = "rate", default_value_t = 10_000)]
    pub rate: u64,

    /// Message body size in bytes.
    #[arg(short = 's', long = "size", default_value_t = 1024)]
    pub size: usize,

    /// Concurrent senders.
    #[arg(short = 'w', long = "threads", default_value_t = 16)]
    pub threads: usize,

    /// Seconds to run.
    #[arg(long = "duration", default_value_t = 30)]
    pub duration_secs: u64,

    /// Consumer group (a new one consumes only what this run sends).
    #[arg(short = 'g', long = "group", default_value = "benchmark_e2e")]
    pub group: String,
}

pub async fn run(mut args: E2eArgs) -> anyhow::Result<Summary> {
    let topic = args
        .topic
        .take()
        .unwrap_or_else(|| format!("BenchmarkE2e_{}", karman_client::wall_clock_ms()));
    // The topic must exist before the consumer looks up its route, or the consumer would
    // only find it at its next route refresh.
    let warm_up = Producer::builder()
        .client_config(args.common.client_config()?)
        .group(format!("{}_warmup", args.group))
        .build()
        .await?;
    warm_up.send(Message::new(topic.clone(), "warm-up")).await?;
    warm_up.shutdown().await;
    let reporter = Arc::new(Reporter::new(Columns::Consumer));
    let (listener, _reached) = super::consumer::listener(reporter.clone(), 0, None);
    let consumer = PushConsumer::builder()
        .client_config(args.common.client_config()?)
        .group(args.group.clone())
        .subscribe(topic.clone(), "*")
        .consume_thread_count(8)
        .listener_concurrently(listener)
        .start()
        .await?;
    let producer_args = ProducerArgs {
        common: CommonArgs {
            json: true,
            ..args.common.clone()
        },
        topic: topic.clone(),
        threads: args.threads,
        size: args.size,
        keys: false,
        tag_count: 0,
        count: 0,
        duration_secs: args.duration_secs,
        mode: SendMode::Sync,
        async_send: false,
        batch: 1,
        in_flight: 1,
        delay_level: 0,
        rate: args.rate,
        group: format!("{}_producer", args.group),
    };
    let started = Instant::now();
    let ticking = reporter.tick_until(
        args.common.report_interval(),
        |line| println!("{line}"),
        std::future::pending::<()>(),
    );
    println!("{}", reporter.header());
    let producer_summary = tokio::select! {
        summary = super::producer::run(producer_args) => summary?,
        _ = ticking => unreachable!("the report loop only ends with the producer"),
    };
    // Let the last messages arrive.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let measured = started.elapsed();
    consumer.shutdown().await;
    println!("{}", summary_text(&producer_summary));
    Ok(reporter.summary("e2e", measured))
}
