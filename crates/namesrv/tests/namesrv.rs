//! A NameServer on an ephemeral port, driven over TCP with the frames a Java broker and
//! Java clients send.

use std::time::Duration;

use bytes::BytesMut;
use karman_namesrv::NamesrvConfig;
use karman_protocol::{FrameDecoder, RemotingCommand, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn start(dir: &tempfile::TempDir, scan_ms: u64) -> karman_namesrv::NamesrvHandle {
    let config = NamesrvConfig {
        bind_address: "127.0.0.1".parse().unwrap(),
        listen_port: 0,
        kv_config_path: dir.path().join("kvConfig.json"),
        scan_not_active_broker_interval_ms: scan_ms,
        ..NamesrvConfig::default()
    };
    karman_namesrv::start(config).await.unwrap()
}

/// A raw connection that speaks frames built by hand, as a Java peer writes them.
struct Peer {
    stream: TcpStream,
    buf: BytesMut,
    opaque: i32,
}

impl Peer {
    async fn connect(handle: &karman_namesrv::NamesrvHandle) -> Self {
        Self {
            stream: TcpStream::connect(handle.local_addr()).await.unwrap(),
            buf: BytesMut::new(),
            opaque: 0,
        }
    }

    /// Sends a JSON header exactly as given (with `{opaque}` filled in) and a body.
    async fn call(&mut self, header_template: &str, body: &[u8]) -> RemotingCommand {
        self.opaque += 1;
        let header = header_template.replace("{opaque}", &self.opaque.to_string());
        let mut frame = Vec::new();
        frame.extend_from_slice(&((4 + header.len() + body.len()) as i32).to_be_bytes());
        frame.extend_from_slice(&(header.len() as i32).to_be_bytes());
        frame.extend_from_slice(header.as_bytes());
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).await.unwrap();
        let decoder = FrameDecoder::default();
        loop {
            if let Some(frame) = decoder.decode(&mut self.buf).unwrap() {
                let response = RemotingCommand::decode(frame).unwrap();
                assert_eq!(response.opaque, self.opaque);
                assert!(response.is_response());
                return response;
            }
            let n = tokio::time::timeout(TIMEOUT, self.stream.read_buf(&mut self.buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "NameServer closed the connection");
        }
    }
}

/// The RegisterBrokerBody a Java 5.x broker sends, as fastjson writes it.
fn java_register_body(topics: &[(&str, i32)]) -> String {
    let table: Vec<String> = topics
        .iter()
        .map(|(name, queues)| {
            format!(
                r#""{name}":{{"attributes":{{}},"order":false,"perm":6,"readQueueNums":{queues},"topicFilterType":"SINGLE_TAG","topicName":"{name}","topicSysFlag":0,"writeQueueNums":{queues}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"filterServerList":[],"topicConfigSerializeWrapper":{{"dataVersion":{{"counter":1,"stateVersion":0,"timestamp":1700000000000}},"mappingDataVersion":{{"counter":0,"stateVersion":0,"timestamp":1700000000000}},"topicConfigTable":{{{}}},"topicQueueMappingDetailMap":{{}},"topicQueueMappingInfoMap":{{}}}}}}"#,
        table.join(",")
    )
}

/// The REGISTER_BROKER header a Java 5.x broker sends.
fn java_register_header(name: &str, port: u16, timeout_ms: u64, body: &str) -> String {
    let crc = (crc32fast::hash(body.as_bytes()) & 0x7FFF_FFFF) as i32;
    format!(
        r#"{{"code":103,"extFields":{{"brokerAddr":"127.0.0.1:{port}","brokerId":"0","brokerName":"{name}","clusterName":"DefaultCluster","compressed":"false","enableActingMaster":"false","haServerAddr":"127.0.0.1:{ha}","heartbeatTimeoutMillis":"{timeout_ms}","bodyCrc32":"{crc}"}},"flag":0,"language":"JAVA","opaque":{{opaque}},"serializeTypeCurrentRPC":"JSON","version":479}}"#,
        ha = port + 1
    )
}

fn route_request(topic: &str, version: i32) -> String {
    format!(
        r#"{{"code":105,"extFields":{{"topic":"{topic}"}},"flag":0,"language":"JAVA","opaque":{{opaque}},"serializeTypeCurrentRPC":"JSON","version":{version}}}"#
    )
}

const CLUSTER_INFO: &str = r#"{"code":106,"flag":0,"language":"JAVA","opaque":{opaque},"serializeTypeCurrentRPC":"JSON","version":479}"#;

fn body_text(response: &RemotingCommand) -> String {
    String::from_utf8(response.body.to_bytes().to_vec()).unwrap()
}

async fn register(peer: &mut Peer, name: &str, port: u16, timeout_ms: u64, topics: &[(&str, i32)]) {
    let body = java_register_body(topics);
    let response = peer
        .call(
            &java_register_header(name, port, timeout_ms, &body),
            body.as_bytes(),
        )
        .await;
    assert_eq!(
        response.response_code(),
        ResponseCode::Success,
        "{:?}",
        response.remark
    );
}

#[tokio::test]
async fn two_brokers_register_then_a_silent_one_expires_with_its_queues() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start(&dir, 50).await;
    let mut broker_a = Peer::connect(&namesrv).await;
    let mut broker_b = Peer::connect(&namesrv).await;
    register(
        &mut broker_a,
        "broker-a",
        10911,
        120_000,
        &[("TopicTest", 4)],
    )
    .await;
    register(
        &mut broker_b,
        "broker-b",
        10921,
        600,
        &[("TopicTest", 4), ("OnlyOnB", 2)],
    )
    .await;

    let mut client = Peer::connect(&namesrv).await;
    // Java 4.9.4+ / 5.x clients get standard JSON (spec §4.2).
    let route = client.call(&route_request("TopicTest", 479), b"").await;
    assert_eq!(route.response_code(), ResponseCode::Success);
    assert_eq!(
        body_text(&route),
        concat!(
            r#"{"brokerDatas":["#,
            r#"{"brokerAddrs":{"0":"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false},"#,
            r#"{"brokerAddrs":{"0":"127.0.0.1:10921"},"brokerName":"broker-b","cluster":"DefaultCluster","enableActingMaster":false}],"#,
            r#""filterServerTable":{},"queueDatas":["#,
            r#"{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4},"#,
            r#"{"brokerName":"broker-b","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}"#
        )
    );
    // Old clients (rocketmq-client-go sends version 317) get fastjson's unquoted ids.
    let old = client.call(&route_request("TopicTest", 317), b"").await;
    assert!(body_text(&old).starts_with(r#"{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911"}"#));

    // Cluster info always in the fastjson dialect, as the Java NameServer writes it.
    let cluster = client.call(CLUSTER_INFO, b"").await;
    assert_eq!(
        body_text(&cluster),
        concat!(
            r#"{"brokerAddrTable":{"#,
            r#""broker-a":{"brokerAddrs":{0:"127.0.0.1:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false},"#,
            r#""broker-b":{"brokerAddrs":{0:"127.0.0.1:10921"},"brokerName":"broker-b","cluster":"DefaultCluster","enableActingMaster":false}},"#,
            r#""clusterAddrTable":{"DefaultCluster":["broker-a","broker-b"]}}"#
        )
    );

    // broker-b stays connected but stops registering: past its 600 ms it expires.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let route = client.call(&route_request("TopicTest", 479), b"").await;
        let text = body_text(&route);
        if !text.contains("broker-b") {
            assert!(
                text.contains(r#""queueDatas":[{"brokerName":"broker-a""#),
                "{text}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker-b never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone = client.call(&route_request("OnlyOnB", 479), b"").await;
    assert_eq!(gone.response_code(), ResponseCode::TopicNotExist);
    assert_eq!(
        gone.remark.as_deref(),
        Some("No topic route info in name server for the topic: OnlyOnB")
    );
    let cluster = body_text(&client.call(CLUSTER_INFO, b"").await);
    assert!(!cluster.contains("broker-b"), "{cluster}");
    drop(broker_b);
    namesrv.shutdown().await;
}

#[tokio::test]
async fn closed_broker_connection_removes_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start(&dir, 5_000).await;
    let mut broker = Peer::connect(&namesrv).await;
    register(&mut broker, "broker-a", 10911, 120_000, &[("T", 4)]).await;
    let mut client = Peer::connect(&namesrv).await;
    assert_eq!(
        client
            .call(&route_request("T", 479), b"")
            .await
            .response_code(),
        ResponseCode::Success
    );
    drop(broker);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while client
        .call(&route_request("T", 479), b"")
        .await
        .response_code()
        != ResponseCode::TopicNotExist
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker was not removed on close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    namesrv.shutdown().await;
}

#[tokio::test]
async fn register_with_bad_crc_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start(&dir, 5_000).await;
    let mut broker = Peer::connect(&namesrv).await;
    let body = java_register_body(&[("T", 4)]);
    let header = java_register_header("broker-a", 10911, 120_000, &body);
    let response = broker
        .call(&header, body.replace("\"perm\":6", "\"perm\":7").as_bytes())
        .await;
    assert_eq!(response.response_code(), ResponseCode::SystemError);
    assert_eq!(response.remark.as_deref(), Some("crc32 not match"));
    namesrv.shutdown().await;
}

fn kv_header(code: i32, fields: &str) -> String {
    format!(
        r#"{{"code":{code},"extFields":{{{fields}}},"flag":0,"language":"JAVA","opaque":{{opaque}},"version":479}}"#
    )
}

#[tokio::test]
async fn kv_config_put_get_list_delete_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start(&dir, 5_000).await;
    let mut admin = Peer::connect(&namesrv).await;
    let put = kv_header(
        100,
        r#""namespace":"ORDER_TOPIC_CONFIG","key":"T","value":"broker-a:4""#,
    );
    assert_eq!(
        admin.call(&put, b"").await.response_code(),
        ResponseCode::Success
    );
    let get = admin
        .call(
            &kv_header(101, r#""namespace":"ORDER_TOPIC_CONFIG","key":"T""#),
            b"",
        )
        .await;
    assert_eq!(&get.ext_fields["value"], "broker-a:4");
    let list = admin
        .call(&kv_header(219, r#""namespace":"ORDER_TOPIC_CONFIG""#), b"")
        .await;
    assert_eq!(body_text(&list), r#"{"table":{"T":"broker-a:4"}}"#);
    let missing = admin
        .call(&kv_header(101, r#""namespace":"X","key":"Y""#), b"")
        .await;
    assert_eq!(missing.response_code(), ResponseCode::QueryNotFound);
    drop(admin);
    namesrv.shutdown().await;

    let namesrv = start(&dir, 5_000).await;
    let mut admin = Peer::connect(&namesrv).await;
    let get = admin
        .call(
            &kv_header(101, r#""namespace":"ORDER_TOPIC_CONFIG","key":"T""#),
            b"",
        )
        .await;
    assert_eq!(&get.ext_fields["value"], "broker-a:4");
    let delete = kv_header(102, r#""namespace":"ORDER_TOPIC_CONFIG","key":"T""#);
    assert_eq!(
        admin.call(&delete, b"").await.response_code(),
        ResponseCode::Success
    );
    let get = admin
        .call(
            &kv_header(101, r#""namespace":"ORDER_TOPIC_CONFIG","key":"T""#),
            b"",
        )
        .await;
    assert_eq!(get.response_code(), ResponseCode::QueryNotFound);
    namesrv.shutdown().await;
}

#[tokio::test]
async fn write_perm_topic_lists_and_delete_topic() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start(&dir, 5_000).await;
    let mut broker = Peer::connect(&namesrv).await;
    register(
        &mut broker,
        "broker-a",
        10911,
        120_000,
        &[("T", 4), ("U", 2)],
    )
    .await;
    let mut admin = Peer::connect(&namesrv).await;

    let wipe = admin
        .call(&kv_header(205, r#""brokerName":"broker-a""#), b"")
        .await;
    assert_eq!(&wipe.ext_fields["wipeTopicCount"], "2");
    assert!(body_text(&admin.call(&route_request("T", 479), b"").await).contains(r#""perm":4"#));
    let add = admin
        .call(&kv_header(327, r#""brokerName":"broker-a""#), b"")
        .await;
    assert_eq!(&add.ext_fields["addTopicCount"], "2");

    let all = admin.call(&kv_header(206, ""), b"").await;
    assert_eq!(body_text(&all), r#"{"topicList":["T","U"]}"#);
    let by_cluster = admin
        .call(&kv_header(224, r#""cluster":"DefaultCluster""#), b"")
        .await;
    assert_eq!(body_text(&by_cluster), r#"{"topicList":["T","U"]}"#);
    let system = admin.call(&kv_header(304, ""), b"").await;
    assert_eq!(
        body_text(&system),
        r#"{"brokerAddr":"127.0.0.1:10911","topicList":["DefaultCluster","broker-a"]}"#
    );

    let delete = admin.call(&kv_header(216, r#""topic":"U""#), b"").await;
    assert_eq!(delete.response_code(), ResponseCode::Success);
    assert_eq!(
        admin
            .call(&route_request("U", 479), b"")
            .await
            .response_code(),
        ResponseCode::TopicNotExist
    );
    namesrv.shutdown().await;
}

#[tokio::test]
async fn namesrv_config_is_readable_and_file_paths_cannot_be_changed_remotely() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start(&dir, 5_000).await;
    let mut admin = Peer::connect(&namesrv).await;
    let config = body_text(&admin.call(&kv_header(319, ""), b"").await);
    assert!(config.contains("orderMessageEnable=false\n"), "{config}");

    let update = admin
        .call(&kv_header(318, ""), b"orderMessageEnable=true\n")
        .await;
    assert_eq!(update.response_code(), ResponseCode::Success);
    let config = body_text(&admin.call(&kv_header(319, ""), b"").await);
    assert!(config.contains("orderMessageEnable=true\n"));

    let refused = admin
        .call(&kv_header(318, ""), b"kvConfigPath=/etc/passwd\n")
        .await;
    assert_eq!(refused.response_code(), ResponseCode::SystemError);
    assert!(
        refused
            .remark
            .unwrap()
            .contains("cannot change while running")
    );
    let unknown = admin
        .call(&kv_header(318, ""), b"configStorePath=/tmp/x\n")
        .await;
    assert_eq!(unknown.response_code(), ResponseCode::SystemError);
    namesrv.shutdown().await;
}

#[tokio::test]
async fn unknown_request_code_is_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let namesrv = start(&dir, 5_000).await;
    let mut client = Peer::connect(&namesrv).await;
    let response = client.call(&kv_header(310, ""), b"").await;
    assert_eq!(
        response.response_code(),
        ResponseCode::RequestCodeNotSupported
    );
    assert_eq!(
        response.remark.as_deref(),
        Some(" request type 310 not supported")
    );
    namesrv.shutdown().await;
}
