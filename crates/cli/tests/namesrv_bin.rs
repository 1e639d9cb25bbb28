//! `karman namesrv` as a process: config file, port override, readiness line, graceful
//! stop on SIGTERM, and the exit code of a bad config.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use karman_protocol::{RemotingCommand, RequestCode, ResponseCode};
use karman_remoting::{ClientConfig, Dispatcher, RemotingClient};

fn karman() -> Command {
    Command::new(env!("CARGO_BIN_EXE_karman"))
}

#[test]
fn namesrv_starts_from_a_config_file_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("namesrv.conf");
    std::fs::write(
        &conf,
        format!(
            "# a namesrv.conf as RocketMQ users write it\nbindAddress=127.0.0.1\nlistenPort=9999\nkvConfigPath={}\nrocketmqHome=/opt/rocketmq\n",
            dir.path().join("kvConfig.json").display()
        ),
    )
    .unwrap();
    let mut child = karman()
        .args(["namesrv", "-c"])
        .arg(&conf)
        .args(["-p", "0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut saw_unknown_key_warning = false;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        saw_unknown_key_warning |= line.contains("rocketmqHome");
        if let Some(rest) = line.trim().strip_prefix("karman namesrv listening on ") {
            addr = Some(rest.to_owned());
            break;
        }
        line.clear();
    }
    let addr = addr.expect("the namesrv never printed its address");
    assert!(saw_unknown_key_warning, "unknown keys are reported");
    assert!(!addr.ends_with(":9999"), "-p overrides listenPort");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let response = runtime.block_on(async {
        let client = RemotingClient::new(ClientConfig::default(), Dispatcher::new());
        client
            .invoke(
                &addr,
                RemotingCommand::request(RequestCode::GetBrokerClusterInfo),
                Duration::from_secs(5),
            )
            .await
            .unwrap()
    });
    assert_eq!(response.response_code(), ResponseCode::Success);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
}

#[test]
fn bad_config_value_exits_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("namesrv.conf");
    std::fs::write(&conf, "listenPort=ninety\n").unwrap();
    let output = karman()
        .args(["namesrv", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listenPort"), "{stderr}");
    assert!(stderr.contains("ninety"), "{stderr}");
}

#[test]
fn print_config_item_lists_every_key() {
    let output = karman()
        .args(["namesrv", "--printConfigItem", "-p", "9877"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("listenPort=9877\n"), "{stdout}");
    assert!(
        stdout.contains("scanNotActiveBrokerInterval=5000\n"),
        "{stdout}"
    );
}
