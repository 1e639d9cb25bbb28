//! `karman bench producer|consumer|e2e`: RocketMQ's benchmark tools on karman-client.
//! Every interval prints the columns RocketMQ users know plus HDR percentiles; the end
//! prints a summary, and with `--json` one JSON object as the last line.

mod consumer;
mod e2e;
mod producer;
mod report;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::ProgressBar;

use report::{Reporter, Summary, summary_text};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    kind: BenchKind,
}

#[derive(Debug, Subcommand)]
enum BenchKind {
    /// Send messages as fast as possible (or at --rate) and report TPS and send latency.
    Producer(producer::ProducerArgs),
    /// Consume a topic and report TPS and born-to-consume latency.
    Consumer(consumer::ConsumerArgs),
    /// Produce at a fixed rate and consume at once: end-to-end latency.
    E2e(e2e::E2eArgs),
}

/// Options every benchmark takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// NameServer address (default: the NAMESRV_ADDR variable).
    #[arg(short = 'n', long = "namesrvAddr", env = "NAMESRV_ADDR")]
    pub namesrv_addr: Option<String>,

    /// Seconds between report lines.
    #[arg(long = "report-interval", default_value_t = 1)]
    pub report_interval_secs: u64,

    /// Print one JSON object with the summary as the last line.
    #[arg(long)]
    pub json: bool,
}

impl CommonArgs {
    pub fn namesrv(&self) -> anyhow::Result<String> {
        self.namesrv_addr
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                crate::ConfigProblem(
                    "no NameServer address: pass -n host:port or set NAMESRV_ADDR".to_owned(),
                )
                .into()
            })
    }

    pub fn report_interval(&self) -> Duration {
        Duration::from_secs(self.report_interval_secs.max(1))
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (summary, json) = match args.kind {
        BenchKind::Producer(args) => {
            let json = args.common.json;
            (producer::run(args).await?, json)
        }
        BenchKind::Consumer(args) => {
            let json = args.common.json;
            (consumer::run(args).await?, json)
        }
        BenchKind::E2e(args) => {
            let json = args.common.json;
            (e2e::run(args).await?, json)
        }
    };
    print_summary(&summary, json);
    Ok(())
}

fn print_summary(summary: &Summary, json: bool) {
    println!("{}", summary_text(summary));
    if json {
        println!("{}", serde_json::to_string(summary).unwrap_or_default());
    }
}

fn print_header(common: &CommonArgs, reporter: &Reporter, bar: Option<&ProgressBar>) {
    print_line(common, bar, reporter.header());
}

/// Report lines go to stdout, above the progress bar when there is one.
fn print_line(_common: &CommonArgs, bar: Option<&ProgressBar>, line: String) {
    match bar {
        Some(bar) => bar.println(line),
        None => println!("{line}"),
    }
}

/// Resolves after `secs` seconds, or never when `secs` is 0.
async fn deadline(secs: u64) {
    if secs == 0 {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
}

/// A global fixed-rate schedule: each message claims the next slot and waits for it, so a
/// run offers exactly `rate` messages per second however many workers share it.
#[derive(Debug)]
pub struct Pacer {
    started: Instant,
    period_ns: u64,
    next_slot: AtomicU64,
}

impl Pacer {
    pub fn new(rate_per_sec: u64) -> Self {
        Self {
            started: Instant::now(),
            period_ns: 1_000_000_000 / rate_per_sec.max(1),
            next_slot: AtomicU64::new(0),
        }
    }

    /// Waits for the slot of the next `n` messages.
    pub async fn wait(&self, n: u64) {
        let slot = self.next_slot.fetch_add(n, Ordering::Relaxed);
        let at = self.started + Duration::from_nanos(slot.saturating_mul(self.period_ns));
        tokio::time::sleep_until(at.into()).await;
    }
}
