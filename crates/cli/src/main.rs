//! The `karman` binary: parses arguments, starts the requested server pieces through their
//! library `start` functions, and maps failures to exit codes. Nothing else lives here.

// The binary is where output meant for a person is printed.
#![allow(clippy::print_stdout)]

mod admin;
mod bench;
mod broker;
#[cfg_attr(not(test), allow(dead_code))]
mod docs;
mod namesrv;
mod standalone;

use std::process::ExitCode;

// A broker and a benchmark allocate per message on every core: glibc's allocator spent a
// third of their CPU time in malloc and free under that load, mimalloc a fraction of it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Karman: a RocketMQ-compatible messaging platform.
#[derive(Debug, Parser)]
#[command(name = "karman", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a NameServer and a broker in one process, data under ./data.
    Standalone(standalone::StandaloneArgs),
    /// Run a NameServer (mqnamesrv).
    Namesrv(namesrv::NamesrvArgs),
    /// Run a broker from a RocketMQ broker.conf (mqbroker).
    Broker(broker::BrokerArgs),
    /// Benchmark a running cluster: producer, consumer or end-to-end.
    Bench(bench::BenchArgs),
    /// mqadmin's subcommands: `karman admin updateTopic -n 127.0.0.1:9876 -c DefaultCluster -t T`.
    Admin(admin::AdminArgs),
}

/// Exit codes: 0 success, 1 runtime failure, 2 bad arguments or configuration (clap uses
/// 2 for argument errors too).
const EXIT_FAILURE: u8 = 1;
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Admin output is for a person or a script: only errors are logged unless RUST_LOG says.
    init_tracing(if matches!(cli.command, Command::Admin(_)) {
        "error"
    } else {
        "info"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("karman: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Standalone(args) => standalone::run(args).await,
            Command::Namesrv(args) => namesrv::run(args).await,
            Command::Broker(args) => broker::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Admin(args) => admin::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("karman: {error:#}");
            if error.downcast_ref::<ConfigProblem>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}

/// Marks an error as the user's configuration, for the exit code.
#[derive(Debug)]
pub struct ConfigProblem(pub String);

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigProblem {}

/// Logs go to stderr; `RUST_LOG` filters them (default `default_filter`).
fn init_tracing(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
