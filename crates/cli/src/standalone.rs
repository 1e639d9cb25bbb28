//! `karman standalone`: a NameServer and a broker in one process, data under ./data.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Args;
use karman_namesrv::NamesrvConfig;
use tracing::info;

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Directory for the store, tables and KV config.
    #[arg(
        short = 'd',
        long = "data-dir",
        value_name = "DIR",
        default_value = "data"
    )]
    data_dir: PathBuf,

    /// Broker config properties file (RocketMQ broker.conf keys); namesrvAddr in it is
    /// ignored: the broker registers with the embedded NameServer.
    #[arg(short = 'c', long = "configFile", value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// NameServer port.
    #[arg(long = "namesrv-port", value_name = "PORT", default_value_t = 9876)]
    namesrv_port: u16,

    /// Broker port (the VIP channel is this minus 2).
    #[arg(long = "broker-port", value_name = "PORT", default_value_t = 10911)]
    broker_port: u16,

    /// Address the listeners bind and the broker advertises.
    #[arg(long = "host", value_name = "IP", default_value = "127.0.0.1")]
    host: IpAddr,
}

pub async fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let namesrv = karman_namesrv::start(NamesrvConfig {
        bind_address: args.host,
        listen_port: args.namesrv_port,
        kv_config_path: args.data_dir.join("namesrv").join("kvConfig.json"),
        ..NamesrvConfig::default()
    })
    .await
    .context("the NameServer could not start")?;
    let namesrv_addr = if args.host.is_unspecified() {
        std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), namesrv.local_addr().port())
    } else {
        namesrv.local_addr()
    };

    let mut config = crate::broker::load_config(args.config_file.as_ref())?;
    if args.config_file.is_none() {
        config.broker_name = "broker-a".to_owned();
    }
    config.namesrv_addr = Some(namesrv_addr.to_string());
    config.bind_address = args.host;
    if !args.host.is_unspecified() {
        config.broker_ip1 = args.host;
        config.broker_ip2 = args.host;
    }
    config.listen_port = args.broker_port;
    config.store.store_path_root_dir = args.data_dir.join("store");
    let broker = karman_broker::start(config)
        .await
        .context("the broker could not start")?;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    info!(ready_ms, "standalone ready");
    eprintln!("karman standalone ready in {ready_ms:.0} ms");
    eprintln!("  NameServer  {namesrv_addr}");
    eprintln!(
        "  Broker      {} (VIP {})",
        broker.broker_addr(),
        broker
            .local_addrs()
            .get(1)
            .map_or_else(|| "-".to_owned(), ToString::to_string)
    );
    eprintln!("  Data        {}", args.data_dir.display());
    eprintln!("  Use NAMESRV_ADDR={namesrv_addr} with any RocketMQ client or `karman admin`.");
    crate::shutdown_signal().await;
    info!("shutting down");
    broker.shutdown().await;
    namesrv.shutdown().await;
    Ok(())
}
