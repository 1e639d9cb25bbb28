//! `karman broker -c broker.conf`: mqbroker's options, on Karman's broker.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use karman_broker::BrokerConfig;
use tracing::{info, warn};

use crate::ConfigProblem;

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Broker config properties file (RocketMQ broker.conf keys).
    #[arg(short = 'c', long = "configFile", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// NameServer addresses, `;`-separated (overrides namesrvAddr; default: NAMESRV_ADDR).
    #[arg(short = 'n', long = "namesrvAddr", value_name = "ADDRS")]
    namesrv_addr: Option<String>,

    /// Print all config items with their values and exit.
    #[arg(short = 'p', long = "printConfigItem")]
    print_config_item: bool,
}

/// Reads broker.conf through the key table, warning about keys Karman does not know.
pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<BrokerConfig> {
    let Some(path) = path else {
        return Ok(BrokerConfig::default());
    };
    let (config, report) = BrokerConfig::load(path).map_err(|e| ConfigProblem(e.to_string()))?;
    for key in report.unknown_keys {
        warn!(file = %path.display(), key = %key, "unknown broker.conf key ignored");
    }
    Ok(config)
}

pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config_file.as_ref())?;
    if let Some(addrs) = args.namesrv_addr {
        config.namesrv_addr = Some(addrs);
    }
    if args.print_config_item {
        print!("{}", config.render());
        return Ok(());
    }
    if config.namesrv_addrs().is_empty() {
        warn!("no namesrvAddr configured: clients will not find this broker through a NameServer");
    }
    let broker = karman_broker::start(config)
        .await
        .context("the broker could not start")?;
    info!(addr = %broker.broker_addr(), "The broker boot success.");
    eprintln!(
        "karman broker listening on {} (VIP {}), registered as {}",
        broker.local_addr(),
        broker
            .local_addrs()
            .get(1)
            .map_or_else(|| "-".to_owned(), ToString::to_string),
        broker.broker_addr()
    );
    crate::shutdown_signal().await;
    info!("shutting down");
    broker.shutdown().await;
    Ok(())
}
