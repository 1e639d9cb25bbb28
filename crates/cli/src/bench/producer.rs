//! `karman bench producer`: RocketMQ's producer benchmark, on karman-client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use karman_client::{ClientError, Message, Producer};
use tokio_util::sync::CancellationToken;

use super::report::{Columns, Counters, Reporter, Summary};
use super::{CommonArgs, Pacer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SendMode {
    Sync,
    Async,
    Oneway,
}

#[derive(Debug, Clone, Args)]
pub struct ProducerArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Topic to send to.
    #[arg(short = 't', long, default_value = "BenchmarkTest")]
    pub topic: String,

    /// Concurrent senders.
    #[arg(short = 'w', long = "threads", default_value_t = 64)]
    pub threads: usize,

    /// Message body size in bytes.
    #[arg(short = 's', long = "size", default_value_t = 128)]
    pub size: usize,

    /// Give every message a KEYS property (indexed for queries).
    #[arg(short = 'k', long = "keys")]
    pub keys: bool,

    /// Number of distinct tags (0: no tags).
    #[arg(short = 'l', long = "tag-count", default_value_t = 0)]
    pub tag_count: usize,

    /// Messages to send in all (0: until the duration ends or Ctrl-C).
    #[arg(short = 'q', long = "count", default_value_t = 0)]
    pub count: u64,

    /// Seconds to run (0: until the count is reached or Ctrl-C).
    #[arg(long = "duration", default_value_t = 0)]
    pub duration_secs: u64,

    /// sync waits for each answer, async keeps sends in flight, oneway expects no answer.
    #[arg(long = "mode", value_enum, default_value_t = SendMode::Sync)]
    pub mode: SendMode,

    /// Send asynchronously (RocketMQ's `-y`; the same as `--mode async`).
    #[arg(short = 'y', long = "async")]
    pub async_send: bool,

    /// Messages per send (> 1 sends batches; with --mode async, batches stay in flight
    /// like single async sends).
    #[arg(short = 'b', long = "batch", default_value_t = 1)]
    pub batch: usize,

    /// Async sends (single messages or batches) each sender keeps in flight.
    #[arg(long = "in-flight", default_value_t = 32)]
    pub in_flight: usize,

    /// Delay level of every message (0: none).
    #[arg(short = 'e', long = "delay-level", default_value_t = 0)]
    pub delay_level: i32,

    /// Messages per second in all (0: as fast as possible).
    #[arg(long = "rate", default_value_t = 0)]
    pub rate: u64,

    /// Producer group.
    #[arg(short = 'g', long = "group", default_value = "benchmark_producer")]
    pub group: String,
}

impl ProducerArgs {
    fn mode(&self) -> SendMode {
        if self.async_send {
            SendMode::Async
        } else {
            self.mode
        }
    }

    /// Rejects combinations no RocketMQ producer offers.
    fn validate(&self) -> anyhow::Result<()> {
        if self.mode() == SendMode::Oneway && self.batch > 1 {
            return Err(crate::ConfigProblem(
                "a batch is sent sync or async, never oneway: use --mode sync or --mode async with --batch"
                    .to_owned(),
            )
            .into());
        }
        if self.in_flight == 0 {
            return Err(crate::ConfigProblem("--in-flight must be at least 1".to_owned()).into());
        }
        Ok(())
    }
}

/// What an async send resolves to: its result, when it left, its body bytes, its messages.
type InFlight =
    futures::future::BoxFuture<'static, (karman_client::Result<()>, Instant, usize, u64)>;

fn classify(counters: &Counters, error: &ClientError) {
    let broker_answer = match error {
        ClientError::Broker { .. } => true,
        ClientError::SendFailed { last, .. } => matches!(**last, ClientError::Broker { .. }),
        _ => false,
    };
    let counter = if broker_answer {
        &counters.response_failed
    } else {
        &counters.send_failed
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

fn build_message(args: &ProducerArgs, body: &Bytes, sequence: u64) -> Message {
    let mut message = Message::new(args.topic.clone(), body.clone());
    if args.tag_count > 0 {
        message = message.with_tags(format!("tag{}", sequence % args.tag_count as u64));
    }
    if args.keys {
        message = message.with_keys([format!("key{sequence}")]);
    }
    if args.delay_level > 0 {
        message = message.with_delay_level(args.delay_level);
    }
    message
}

/// The message count a worker may still claim, if the run is count-bounded.
struct Quota {
    remaining: Option<AtomicU64>,
}

impl Quota {
    fn take(&self, n: u64) -> u64 {
        match &self.remaining {
            None => n,
            Some(left) => {
                let mut current = left.load(Ordering::Relaxed);
                loop {
                    let granted = current.min(n);
                    if granted == 0 {
                        return 0;
                    }
                    match left.compare_exchange_weak(
                        current,
                        current - granted,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return granted,
                        Err(actual) => current = actual,
                    }
                }
            }
        }
    }
}

pub async fn run(args: ProducerArgs) -> anyhow::Result<Summary> {
    args.validate()?;
    let producer = Producer::builder()
        .client_config(args.common.client_config()?)
        .group(args.group.clone())
        .build()
        .await?;
    let reporter = Arc::new(Reporter::new(Columns::Producer));
    let stop = CancellationToken::new();
    let quota = Arc::new(Quota {
        remaining: (args.count > 0).then(|| AtomicU64::new(args.count)),
    });
    let pacer = (args.rate > 0).then(|| Arc::new(Pacer::new(args.rate)));
    let bar = (args.count > 0 && !args.common.json).then(|| {
        let bar = ProgressBar::new(args.count);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let body = Bytes::from(vec![b'k'; args.size]);
    let started = Instant::now();
    let workers = tokio_util::task::TaskTracker::new();
    for worker in 0..args.threads {
        let context = Worker {
            args: args.clone(),
            producer: producer.clone(),
            reporter: reporter.clone(),
            quota: quota.clone(),
            pacer: pacer.clone(),
            stop: stop.clone(),
            body: body.clone(),
            bar: bar.clone(),
            sequence_base: worker as u64 * 1_000_000_000,
        };
        workers.spawn(context.run());
    }
    workers.close();
    let all_done = workers.wait();
    let deadline = super::deadline(args.duration_secs);
    let stop_on = stop.clone();
    let finished = async move {
        tokio::select! {
            _ = all_done => {}
            _ = deadline => stop_on.cancel(),
            _ = crate::shutdown_signal() => stop_on.cancel(),
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
    stop.cancel();
    // Sends already under way finish, and count, within the measured time.
    workers.wait().await;
    let measured = started.elapsed();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    producer.shutdown().await;
    Ok(reporter.summary("producer", measured))
}

struct Worker {
    args: ProducerArgs,
    producer: Producer,
    reporter: Arc<Reporter>,
    quota: Arc<Quota>,
    pacer: Option<Arc<Pacer>>,
    stop: CancellationToken,
    body: Bytes,
    bar: Option<ProgressBar>,
    sequence_base: u64,
}

impl Worker {
    async fn run(self) {
        let mut recorder = self.reporter.recorder();
        let counters = self.reporter.counters.clone();
        let batch = self.args.batch.max(1) as u64;
        let mut in_flight = futures::stream::FuturesUnordered::<InFlight>::new();
        let window = self.args.in_flight.max(1);
        let mode = self.args.mode();
        let mut sequence = self.sequence_base;
        while !self.stop.is_cancelled() {
            let n = self.quota.take(batch);
            if n == 0 {
                break;
            }
            if let Some(pacer) = &self.pacer {
                pacer.wait(n).await;
            }
            let messages: Vec<Message> = (0..n)
                .map(|i| build_message(&self.args, &self.body, sequence + i))
                .collect();
            sequence += n;
            let bytes = self.body.len() * messages.len();
            let sent_at = Instant::now();
            let result = match (mode, n) {
                (SendMode::Async, n) if n > 1 => {
                    // A batch in its own task, so that it makes progress while this
                    // sender builds the next one.
                    let producer = self.producer.clone();
                    let send = tokio::spawn(async move { producer.send_batch(messages).await });
                    in_flight.push(Box::pin(async move {
                        let result = match send.await {
                            Ok(result) => result.map(|_| ()),
                            Err(_) => Err(ClientError::Shutdown {
                                what: "the benchmark's batch send task",
                            }),
                        };
                        (result, sent_at, bytes, n)
                    }));
                    self.drain_to(window - 1, &mut in_flight, &mut recorder, &counters)
                        .await;
                    continue;
                }
                (_, n) if n > 1 => self.producer.send_batch(messages).await.map(|_| ()),
                (SendMode::Sync, _) => self.producer.send(one(messages)).await.map(|_| ()),
                (SendMode::Oneway, _) => self.producer.send_oneway(one(messages)).await,
                (SendMode::Async, _) => match self.producer.send_async(one(messages)).await {
                    Ok(handle) => {
                        in_flight.push(Box::pin(async move {
                            (handle.await.map(|_| ()), sent_at, bytes, 1)
                        }));
                        self.drain_to(window - 1, &mut in_flight, &mut recorder, &counters)
                            .await;
                        continue;
                    }
                    Err(error) => Err(error),
                },
            };
            self.account(result, sent_at, bytes, n, &mut recorder, &counters);
        }
        self.drain_to(0, &mut in_flight, &mut recorder, &counters)
            .await;
    }

    /// Waits for async sends until at most `left` are in flight.
    async fn drain_to(
        &self,
        left: usize,
        in_flight: &mut futures::stream::FuturesUnordered<InFlight>,
        recorder: &mut hdrhistogram::sync::Recorder<u64>,
        counters: &Counters,
    ) {
        use futures::StreamExt as _;
        while in_flight.len() > left {
            if let Some((result, sent_at, bytes, n)) = in_flight.next().await {
                self.account(result, sent_at, bytes, n, recorder, counters);
            }
        }
    }

    fn account(
        &self,
        result: karman_client::Result<()>,
        sent_at: Instant,
        bytes: usize,
        n: u64,
        recorder: &mut hdrhistogram::sync::Recorder<u64>,
        counters: &Counters,
    ) {
        match result {
            Ok(()) => {
                let latency = sent_at.elapsed();
                counters.record(recorder, latency, bytes);
                // A batch counts each of its messages.
                if n > 1 {
                    counters.ok.fetch_add(n - 1, Ordering::Relaxed);
                }
                if let Some(bar) = &self.bar {
                    bar.inc(n);
                }
            }
            Err(error) => {
                classify(counters, &error);
                tracing::debug!(%error, "send failed");
            }
        }
    }
}

fn one(mut messages: Vec<Message>) -> Message {
    messages.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        producer: ProducerArgs,
    }

    fn parse(args: &[&str]) -> ProducerArgs {
        Cli::try_parse_from(std::iter::once("producer").chain(args.iter().copied()))
            .unwrap()
            .producer
    }

    #[test]
    fn async_batches_and_sync_batches_are_accepted() {
        for mode in ["sync", "async"] {
            let args = parse(&["--mode", mode, "--batch", "32"]);
            assert!(args.validate().is_ok(), "{mode}");
        }
        let args = parse(&["-y", "-b", "32", "--in-flight", "4"]);
        assert_eq!(args.mode(), SendMode::Async);
        assert_eq!(args.in_flight, 4);
        assert!(args.validate().is_ok());
    }

    #[test]
    fn oneway_batches_and_an_empty_window_are_configuration_errors() {
        for args in [
            parse(&["--mode", "oneway", "--batch", "2"]),
            parse(&["--in-flight", "0"]),
        ] {
            let error = args.validate().unwrap_err();
            assert!(
                error.downcast_ref::<crate::ConfigProblem>().is_some(),
                "{error}"
            );
        }
        assert!(parse(&["--mode", "oneway"]).validate().is_ok());
    }

    #[test]
    fn a_count_is_shared_out_exactly() {
        let quota = Quota {
            remaining: Some(AtomicU64::new(70)),
        };
        assert_eq!(quota.take(32), 32);
        assert_eq!(quota.take(32), 32);
        assert_eq!(quota.take(32), 6);
        assert_eq!(quota.take(32), 0);
        let unbounded = Quota { remaining: None };
        assert_eq!(unbounded.take(32), 32);
    }
}
