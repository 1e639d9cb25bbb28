//! Not a test: `KARMAN_FAKE_CLUSTER_SECS=120 cargo test -p karman-client --test example_cluster
//! -- --ignored --nocapture` runs a NameServer on 127.0.0.1:9876 plus one fake broker (with
//! TBW102, so topics are created on first send), to try the examples before the real
//! broker exists. Ignored by default.

mod support;

use std::time::Duration;

#[tokio::test]
#[ignore = "a manual helper that serves a fake cluster for the examples"]
async fn serve_fake_cluster_for_examples() {
    support::init_tracing();
    let secs: u64 = std::env::var("KARMAN_FAKE_CLUSTER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let config = karman_namesrv::NamesrvConfig {
        bind_address: "127.0.0.1".parse().unwrap(),
        listen_port: 9876,
        kv_config_path: dir.path().join("kvConfig.json"),
        ..karman_namesrv::NamesrvConfig::default()
    };
    let namesrv = karman_namesrv::start(config).await.unwrap();
    let broker = support::FakeBroker::start(
        "broker-a",
        &namesrv.local_addr().to_string(),
        &[("TBW102", 8), ("TopicTest", 4)],
    )
    .await;
    eprintln!(
        "fake cluster: namesrv {} broker {} for {secs} s",
        namesrv.local_addr(),
        broker.addr()
    );
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
