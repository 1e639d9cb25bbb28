//! docs/CONFIGURATION.md is generated from the servers' key tables; a test fails when the
//! committed file is stale. Regenerate with `KARMAN_UPDATE_DOCS=1 cargo test -p karman docs`.

use std::fmt::Write as _;

use karman_protocol::java_properties::ConfigKey;

fn table<C>(out: &mut String, keys: &[ConfigKey<C>], defaults: &C) {
    let home = std::env::var("HOME").unwrap_or_default();
    out.push_str("| key | default | reloadable | meaning |\n|---|---|---|---|\n");
    for key in keys {
        let mut default = (key.get)(defaults);
        if !home.is_empty() {
            default = default.replace(&home, "~");
        }
        let reloadable = if key.reloadable { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | {} |",
            key.name, default, reloadable, key.doc
        );
    }
}

/// The whole of docs/CONFIGURATION.md.
pub fn configuration_markdown() -> String {
    let mut out = String::from(
        "# Configuration\n\n\
         Generated from the key tables in the source (`KARMAN_UPDATE_DOCS=1 cargo test -p karman docs`); \
         do not edit by hand.\n\n\
         Karman reads RocketMQ's own config files: Java properties, the same key names. An unknown key \
         is a warning that names it; a bad value stops startup with an error that names the key and \
         the value. \"Reloadable\" keys can change at runtime through the admin commands \
         (`updateNamesrvConfig`, `updateBrokerConfig`); the others, file paths among them, only \
         through the file and a restart.\n\n\
         ## NameServer (`karman namesrv -c namesrv.conf`)\n\n",
    );
    table(
        &mut out,
        karman_namesrv::config::KEYS,
        &karman_namesrv::NamesrvConfig::default(),
    );
    out.push_str(
        "\n## Broker (`karman broker -c broker.conf`, `karman standalone -c broker.conf`)\n\n\
         Store settings live in the same file, as in RocketMQ. Defaults that depend on the host \
         (brokerName, brokerIP1/2) are shown as placeholders.\n\n",
    );
    let mut defaults = karman_broker::BrokerConfig::default();
    defaults.broker_name = "<host name>".to_owned();
    defaults.broker_ip1 = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 0, 10));
    defaults.broker_ip2 = defaults.broker_ip1;
    defaults.namesrv_addr = None;
    table(&mut out, &karman_broker::config::keys(), &defaults);
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    #[test]
    fn docs_configuration_md_is_up_to_date() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIGURATION.md");
        let generated = super::configuration_markdown();
        if std::env::var_os("KARMAN_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/CONFIGURATION.md is stale: run `KARMAN_UPDATE_DOCS=1 cargo test -p karman docs` and commit it"
        );
    }
}
