//! `karman bench consumer`: RocketMQ's consumer benchmark, on karman-client: consume TPS
//! and born-to-consume (B2C) and store-to-consume (S2C) latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use karman_client::consumer::{
    ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus, MessageListenerConcurrently,
};
use karman_client::{ConsumeFromWhere, MessageExt, PushConsumer, wall_clock_ms};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::CommonArgs;
use super::report::{Columns, Reporter, Summary};

#[derive(Debug, Clone, Args)]
pub struct ConsumerArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Topic to consume.
    #[arg(short = 't', long, default_value = "BenchmarkTest")]
    pub topic: String,

    /// Consumer group.
    #[arg(short = 'g', long = "group", default_value = "benchmark_consumer")]
    pub group: String,

    /// Consume threads.
    #[arg(short = 'w', long = "threads", default_value_t = 20)]
    pub threads: usize,

    /// Messages per listener call.
    #[arg(long = "consume-batch", default_value_t = 1)]
    pub consume_batch: usize,

    /// Tag expression, or SQL92 with --sql.
    #[arg(short = 'e', long = "expression", default_value = "*")]
    pub expression: String,

    /// Treat --expression as SQL92.
    #[arg(long = "sql")]
    pub sql: bool,

    /// Start from the first message of each queue (a new group drains the backlog).
    #[arg(long = "from-first")]
    pub from_first: bool,

    /// Stop after this many messages (0: after the duration or Ctrl-C).
    #[arg(short = 'q', long = "count", default_value_t = 0)]
    pub count: u64,

    /// Seconds to run (0: until the count is reached or Ctrl-C).
    #[arg(long = "duration", default_value_t = 0)]
    pub duration_secs: u64,
}

/// Records every consumed message; wakes the run when the count is reached.
pub struct BenchListener {
    pub reporter: Arc<Reporter>,
    pub recorder: Mutex<hdrhistogram::sync::Recorder<u64>>,
    pub target: u64,
    pub consumed: AtomicU64,
    pub reached: Arc<Notify>,
    pub bar: Option<ProgressBar>,
}

#[async_trait]
impl MessageListenerConcurrently for BenchListener {
    async fn consume_message(
        &self,
        messages: &[MessageExt],
        _context: &mut ConsumeConcurrentlyContext,
    ) -> ConsumeConcurrentlyStatus {
        let now = wall_clock_ms();
        {
            let mut recorder = self.recorder.lock();
            for message in messages {
                let born_to_consume = Duration::from_millis(
                    u64::try_from(now - message.born_timestamp_ms).unwrap_or(0),
                );
                self.reporter
                    .counters
                    .record(&mut recorder, born_to_consume, message.body.len());
                self.reporter
                    .counters
                    .record_second(now - message.store_timestamp_ms);
            }
        }
        let n = messages.len() as u64;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
        let total = self.consumed.fetch_add(n, Ordering::Relaxed) + n;
        if self.target > 0 && total >= self.target {
            self.reached.notify_one();
        }
        ConsumeConcurrentlyStatus::ConsumeSuccess
    }
}

pub fn listener(
    reporter: Arc<Reporter>,
    target: u64,
    bar: Option<ProgressBar>,
) -> (BenchListener, Arc<Notify>) {
    let reached = Arc::new(Notify::new());
    let listener = BenchListener {
        recorder: Mutex::new(reporter.recorder()),
        reporter,
        target,
        consumed: AtomicU64::new(0),
        reached: reached.clone(),
        bar,
    };
    (listener, reached)
}

pub async fn run(args: ConsumerArgs) -> anyhow::Result<Summary> {
    let reporter = Arc::new(Reporter::new(Columns::Consumer));
    let bar = (args.count > 0 && !args.common.json).then(|| {
        let bar = ProgressBar::new(args.count);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let (listener, reached) = listener(reporter.clone(), args.count, bar.clone());
    let mut builder = PushConsumer::builder()
        .namesrv_addr(args.common.namesrv()?)
        .group(args.group.clone())
        .consume_thread_count(args.threads)
        .consume_message_batch_max_size(args.consume_batch)
        .listener_concurrently(listener);
    builder = if args.sql {
        builder.subscribe_sql92(args.topic.clone(), args.expression.clone())
    } else {
        builder.subscribe(args.topic.clone(), &args.expression)
    };
    if args.from_first {
        builder = builder.consume_from(ConsumeFromWhere::ConsumeFromFirstOffset);
    }
    let consumer = builder.start().await?;
    let started = Instant::now();
    let deadline = super::deadline(args.duration_secs);
    let finished = async {
        tokio::select! {
            _ = reached.notified(), if args.count > 0 => {}
            _ = deadline => {}
            _ = crate::shutdown_signal() => {}
        }
    };
    super::print_header(&args.common, &reporter, bar.as_ref());
    reporter
        .tick_until(
            args.common.report_interval(),
            |line| super::print_line(&args.common, bar.as_ref(), line),
            finished,
        )
        .await;
    let measured = started.elapsed();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    consumer.shutdown().await;
    Ok(reporter.summary("consumer", measured))
}
