//! `karman namesrv`: mqnamesrv's options, on Karman's NameServer.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use karman_namesrv::{NamesrvConfig, config::KEYS};
use karman_protocol::java_properties;
use tracing::{info, warn};

use crate::ConfigProblem;

#[derive(Debug, Args)]
pub struct NamesrvArgs {
    /// Name server config properties file (namesrv.conf keys).
    #[arg(short = 'c', long = "configFile", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// Listen port (overrides listenPort from the config file) [default: 9876].
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    port: Option<u16>,

    /// Print all config items with their values and exit.
    #[arg(long = "printConfigItem")]
    print_config_item: bool,
}

pub async fn run(args: NamesrvArgs) -> anyhow::Result<()> {
    let mut config = match &args.config_file {
        Some(path) => {
            let (config, report) =
                NamesrvConfig::load(path).map_err(|e| ConfigProblem(e.to_string()))?;
            for key in report.unknown_keys {
                warn!(file = %path.display(), key = %key, "unknown namesrv.conf key ignored");
            }
            config
        }
        None => NamesrvConfig::default(),
    };
    if let Some(port) = args.port {
        config.listen_port = port;
    }
    if args.print_config_item {
        print!("{}", java_properties::render(KEYS, &config));
        return Ok(());
    }
    let handle = karman_namesrv::start(config)
        .await
        .context("the NameServer could not start")?;
    info!(addr = %handle.local_addr(), "The Name Server boot success. serializeType=JSON");
    // A script or test harness reads this line to learn the bound port.
    eprintln!("karman namesrv listening on {}", handle.local_addr());
    crate::shutdown_signal().await;
    info!("shutting down");
    handle.shutdown().await;
    Ok(())
}
