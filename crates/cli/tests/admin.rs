//! `karman admin`: every subcommand run as the real binary against an in-process
//! NameServer and broker on ephemeral ports, checking what it prints (tables, JSON) and
//! its exit code, failures included. Times print in UTC here (`TZ=UTC`).

use std::process::Command;
use std::time::Duration;

use karman_client::admin::Admin;
use karman_client::consumer::LitePullConsumer;
use karman_client::producer::Producer;
use karman_client::{ClientConfig, Message, MessageQueue, SendResult};
use serde_json::Value;
use support::{Cluster, karman};

mod support;

/// How long to wait for something asynchronous (a heartbeat, a registration).
const SETTLE_MAX: Duration = Duration::from_secs(10);

impl Cluster {
    fn client(&self) -> ClientConfig {
        ClientConfig {
            namesrv_addr: self.namesrv(),
            heartbeat_broker_interval: Duration::from_millis(200),
            poll_name_server_interval: Duration::from_millis(500),
            ..ClientConfig::default()
        }
    }

    /// Runs `karman admin <args> -n <this namesrv>`.
    fn admin(&self, args: &[&str]) -> Run {
        let mut command = karman();
        command
            .arg("admin")
            .args(args)
            .args(["-n", &self.namesrv()]);
        Run::of(command)
    }

    /// Sends messages through a producer in this process.
    fn send(&self, messages: Vec<Message>, queue: Option<MessageQueue>) -> Vec<SendResult> {
        self.block_on(async {
            let producer = Producer::builder()
                .client_config(self.client())
                .group("test_producer")
                .build()
                .await
                .unwrap();
            let mut sent = Vec::new();
            for message in messages {
                sent.push(match &queue {
                    Some(q) => producer.send_to_queue(message, q.clone()).await.unwrap(),
                    None => producer.send(message).await.unwrap(),
                });
            }
            producer.shutdown().await;
            sent
        })
    }

    /// Creates a topic with `queues` queues on broker-a through the binary.
    fn topic(&self, topic: &str, queues: u32) {
        let queues = queues.to_string();
        self.admin(&[
            "updateTopic",
            "-b",
            &self.broker_addr(),
            "-t",
            topic,
            "-r",
            &queues,
            "-w",
            &queues,
        ])
        .ok();
    }

    /// Waits until `check` passes, for heartbeats and registrations.
    fn eventually<F, Fut, T>(&self, what: &str, check: F) -> T
    where
        F: Fn(Admin) -> Fut,
        Fut: std::future::Future<Output = (Admin, Option<T>)>,
    {
        self.block_on(async {
            let deadline = tokio::time::Instant::now() + SETTLE_MAX;
            let mut admin = Admin::with_config(self.client()).await.unwrap();
            loop {
                let (back, found) = check(admin).await;
                admin = back;
                if let Some(found) = found {
                    admin.shutdown().await;
                    return found;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "timed out waiting for {what}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }
}

/// One finished run of the binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(mut command: Command) -> Self {
        let output = command.output().unwrap();
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Asserts exit 0 and nothing on stderr.
    #[track_caller]
    fn ok(self) -> Self {
        assert!(
            self.code == 0 && self.stderr.is_empty(),
            "expected success, got {self:#?}"
        );
        self
    }

    /// Asserts this exit code and a one-line `karman: ...` message containing `needle`.
    #[track_caller]
    fn fails(self, code: i32, needle: &str) -> Self {
        assert_eq!(self.code, code, "{self:#?}");
        assert!(self.stderr.contains(needle), "{needle:?} not in {self:#?}");
        if code == 1 {
            assert!(
                self.stderr.starts_with("karman: ") && self.stderr.trim_end().lines().count() == 1,
                "one clear line: {self:#?}"
            );
        }
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The rows of the table whose header line starts with `#` + `first_header`, cells
    /// split on runs of two or more spaces.
    fn table(&self, first_header: &str) -> Vec<Vec<String>> {
        let header = format!("#{first_header}");
        let mut lines = self.stdout.lines().skip_while(|l| !l.starts_with(&header));
        assert!(
            lines.next().is_some(),
            "no {header} table in {}",
            self.stdout
        );
        lines
            .take_while(|l| !l.trim().is_empty() && !l.starts_with("---"))
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    fn header(&self, first_header: &str) -> Vec<String> {
        let header = format!("#{first_header}");
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with(&header))
            .unwrap_or_else(|| panic!("no {header} in {}", self.stdout));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

// -------------------------------------------------------------------------------------
// Arguments and connection

#[test]
fn missing_namesrv_address_exits_2_and_says_how_to_give_one() {
    let run = Run::of({
        let mut c = karman();
        c.args(["admin", "topicList"]);
        c
    });
    run.fails(2, "no NameServer address: pass -n");
}

#[test]
fn namesrv_addr_variable_is_the_default_for_n() {
    let cluster = Cluster::start();
    let run = Run::of({
        let mut c = karman();
        c.args(["admin", "topicList"])
            .env("NAMESRV_ADDR", cluster.namesrv());
        c
    })
    .ok();
    assert!(run.lines().contains(&"TBW102"), "{}", run.stdout);
}

#[test]
fn unreachable_namesrv_exits_1_and_names_it() {
    // A NameServer that has stopped: its port refuses connections.
    let cluster = Cluster::namesrv_only();
    let addr = cluster.namesrv();
    drop(cluster);
    let run = Run::of({
        let mut c = karman();
        c.args(["admin", "clusterList", "-n", &addr]);
        c
    });
    run.fails(1, &format!("cannot reach the NameServer at {addr}"));
}

#[test]
fn bad_arguments_exit_2() {
    let cluster = Cluster::start();
    cluster.admin(&["noSuchCommand"]).fails(2, "noSuchCommand");
    cluster
        .admin(&["updateTopic", "-t", "T"])
        .fails(2, "--brokerAddr");
    cluster
        .admin(&["updateTopic", "-c", "DefaultCluster", "-t", "T", "-p", "7"])
        .fails(2, "perm must be 2 (write), 4 (read) or 6");
    cluster
        .admin(&[
            "updateTopic",
            "-c",
            "DefaultCluster",
            "-t",
            "T",
            "-o",
            "maybe",
        ])
        .fails(2, "expected true or false");
    cluster
        .admin(&["resetOffsetByTime", "-g", "g", "-t", "T", "-s", "yesterday"])
        .fails(2, "is not a time");
}

// -------------------------------------------------------------------------------------
// Topics

#[test]
fn update_topic_creates_on_every_master_of_a_cluster() {
    let cluster = Cluster::start();
    let run = cluster
        .admin(&[
            "updateTopic",
            "-c",
            "DefaultCluster",
            "-t",
            "Orders",
            "-r",
            "4",
            "-w",
            "4",
        ])
        .ok();
    assert_eq!(
        run.lines(),
        [
            format!("create topic to {} success.", cluster.broker_addr()).as_str(),
            "TopicConfig [topicName=Orders, readQueueNums=4, writeQueueNums=4, perm=RW-, topicFilterType=SINGLE_TAG, topicSysFlag=0, order=false, attributes={}]",
        ]
    );
    let route = cluster
        .admin(&["topicRoute", "-t", "Orders", "--json"])
        .ok()
        .json();
    assert_eq!(route["queueDatas"][0]["writeQueueNums"], 4);
}

#[test]
fn update_topic_on_one_broker_with_defaults_attributes_order_and_json() {
    let cluster = Cluster::start();
    let addr = cluster.broker_addr();
    let run = cluster
        .admin(&[
            "updateTopic",
            "-b",
            &addr,
            "-t",
            "Seq",
            "-o",
            "true",
            "-a",
            "+queue.type=Normal",
            "--json",
        ])
        .ok();
    let report = run.json();
    assert_eq!(report["brokers"], serde_json::json!([addr]));
    let config = &report["topicConfig"];
    assert_eq!(config["readQueueNums"], 8, "-r defaults to 8");
    assert_eq!(config["writeQueueNums"], 8, "-w defaults to 8");
    assert_eq!(config["perm"], 6, "-p defaults to 6");
    assert_eq!(config["order"], true);
    assert_eq!(config["attributes"]["queue.type"], "Normal");
    assert_eq!(report["orderConf"], "broker-a:8");
    let kv = cluster.block_on(async {
        let admin = Admin::with_config(cluster.client()).await.unwrap();
        let value = admin
            .get_kv_config("ORDER_TOPIC_CONFIG", "Seq")
            .await
            .unwrap();
        admin.shutdown().await;
        value
    });
    assert_eq!(kv.as_deref(), Some("broker-a:8"));
}

#[test]
fn update_topic_on_an_unknown_cluster_or_broker_says_so() {
    let cluster = Cluster::start();
    cluster
        .admin(&["updateTopic", "-b", "127.0.0.1:1", "-t", "T"])
        .fails(1, "cannot reach the broker at 127.0.0.1:1");
    cluster
        .admin(&["updateTopic", "-c", "Nowhere", "-t", "T"])
        .fails(1, "cluster Nowhere has no master broker registered with the NameServer (clusters known: DefaultCluster)");
}

#[test]
fn delete_topic_removes_it_from_broker_and_namesrv() {
    let cluster = Cluster::start();
    cluster.topic("Gone", 2);
    let run = cluster
        .admin(&["deleteTopic", "-t", "Gone", "-c", "DefaultCluster"])
        .ok();
    assert_eq!(
        run.lines(),
        [
            "delete topic [Gone] from cluster [DefaultCluster] success.",
            "delete topic [Gone] from NameServer success.",
        ]
    );
    let topics = cluster.admin(&["topicList"]).ok();
    assert!(!topics.lines().contains(&"Gone"));
    cluster
        .admin(&["deleteTopic", "-t", "Gone", "-c", "Nowhere"])
        .fails(1, "cluster Nowhere has no master broker");
    cluster
        .admin(&["deleteTopic", "-t", "Gone"])
        .fails(2, "--clusterName");
}

#[test]
fn topic_list_prints_names_or_clusters_and_groups() {
    let cluster = Cluster::start();
    cluster.topic("Listed", 1);
    let plain = cluster.admin(&["topicList"]).ok();
    assert!(plain.lines().contains(&"Listed"));
    assert!(plain.lines().contains(&"TBW102"));

    cluster
        .admin(&[
            "resetOffsetByTime",
            "-g",
            "readers",
            "-t",
            "Listed",
            "-s",
            "now",
        ])
        .ok();
    let with_clusters = cluster.admin(&["topicList", "-c"]).ok();
    assert_eq!(
        with_clusters.header("Cluster Name"),
        ["#Cluster Name", "#Topic", "#Consumer Group"]
    );
    let rows = with_clusters.table("Cluster Name");
    assert!(
        rows.contains(&vec![
            "DefaultCluster".into(),
            "Listed".into(),
            "readers".into()
        ]),
        "{rows:?}"
    );

    let json = cluster.admin(&["topicList", "--json"]).ok().json();
    assert!(
        json["topics"]
            .as_array()
            .unwrap()
            .contains(&"Listed".into())
    );
    let json = cluster.admin(&["topicList", "-c", "--json"]).ok().json();
    let listed = json["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "Listed")
        .unwrap();
    assert_eq!(listed["cluster"], "DefaultCluster");
    assert_eq!(listed["consumerGroups"], serde_json::json!(["readers"]));
}

#[test]
fn topic_route_prints_json_or_a_table() {
    let cluster = Cluster::start();
    cluster.topic("Routed", 3);
    let run = cluster.admin(&["topicRoute", "-t", "Routed"]).ok();
    let route = run.json();
    assert_eq!(route["brokerDatas"][0]["brokerName"], "broker-a");
    assert_eq!(
        route["brokerDatas"][0]["brokerAddrs"]["0"],
        cluster.broker_addr()
    );

    let run = cluster.admin(&["topicRoute", "-t", "Routed", "-l"]).ok();
    assert_eq!(
        run.header("ClusterName"),
        [
            "#ClusterName",
            "#BrokerName",
            "#BrokerAddrs",
            "#ReadQueue",
            "#WriteQueue",
            "#Perm"
        ]
    );
    let rows = run.table("ClusterName");
    assert_eq!(
        rows[0],
        [
            "DefaultCluster".to_owned(),
            "broker-a".into(),
            format!("0={}", cluster.broker_addr()),
            "3".into(),
            "3".into(),
            "RW- (6)".into()
        ]
    );
    assert_eq!(rows[1], ["Total:", "1", "3", "3"]);
}

#[test]
fn no_route_says_the_topic_is_missing_and_auto_create_is_on() {
    let cluster = Cluster::start();
    cluster.admin(&["topicRoute", "-t", "Missing"]).fails(
        1,
        "No route info of this topic: Missing: the topic does not exist on any registered broker; autoCreateTopicEnable is on (broker-a)",
    );
}

#[test]
fn no_route_says_auto_create_is_off() {
    let cluster = Cluster::start();
    let addr = cluster.broker_addr();
    cluster
        .admin(&[
            "updateBrokerConfig",
            "-b",
            &addr,
            "-k",
            "autoCreateTopicEnable",
            "-v",
            "false",
        ])
        .ok();
    let run = cluster.admin(&["topicStatus", "-t", "Missing"]).fails(
        1,
        "No route info of this topic: Missing: the topic does not exist on any registered broker and autoCreateTopicEnable is off on broker-a; create it with `karman admin updateTopic",
    );
    assert!(run.stdout.is_empty());
    // A send fails the same way once auto-create is off (the broker refuses the topic).
    cluster
        .admin(&["sendMessage", "-t", "Missing", "-p", "x"])
        .fails(1, "autoCreateTopicEnable is off on broker-a");
}

#[test]
fn no_route_says_no_broker_is_registered() {
    let cluster = Cluster::namesrv_only();
    cluster.admin(&["topicRoute", "-t", "T"]).fails(
        1,
        &format!(
            "No route info of this topic: T: no broker is registered with the NameServer at {}",
            cluster.namesrv()
        ),
    );
}

#[test]
fn topic_status_lists_each_queue_offsets_and_last_update() {
    let cluster = Cluster::start();
    cluster.topic("Stat", 2);
    let sent = cluster.send(
        vec![Message::new("Stat", "a"), Message::new("Stat", "b")],
        Some(MessageQueue::new("Stat", "broker-a", 1)),
    );
    assert_eq!(sent.len(), 2);
    let run = cluster.admin(&["topicStatus", "-t", "Stat"]).ok();
    assert_eq!(
        run.header("Broker Name"),
        [
            "#Broker Name",
            "#QID",
            "#Min Offset",
            "#Max Offset",
            "#Last Updated"
        ]
    );
    let rows = run.table("Broker Name");
    assert_eq!(rows[0], ["broker-a", "0", "0", "0", "-"]);
    assert_eq!(rows[1][..4], ["broker-a", "1", "0", "2"]);
    assert!(
        rows[1][4].starts_with("20") && rows[1][4].len() == 23,
        "{rows:?}"
    );
    assert!(run.stdout.contains("\nTopic Put TPS: "));

    let json = cluster
        .admin(&["topicStatus", "-t", "Stat", "--json"])
        .ok()
        .json();
    assert_eq!(json["topic"], "Stat");
    assert_eq!(json["queues"][1]["maxOffset"], 2);
    assert!(json["queues"][1]["lastUpdateTimestamp"].as_i64().unwrap() > 0);
}

// -------------------------------------------------------------------------------------
// Cluster and brokers

#[test]
fn cluster_list_shows_each_broker_with_version_and_load() {
    let cluster = Cluster::start();
    let run = cluster.admin(&["clusterList"]).ok();
    assert_eq!(
        run.header("Cluster Name"),
        [
            "#Cluster Name",
            "#Broker Name",
            "#BID",
            "#Addr",
            "#Version",
            "#InTPS(LOAD)",
            "#OutTPS(LOAD)",
            "#Timer(Progress)",
            "#PCWait(ms)",
            "#Hour",
            "#SPACE",
            "#ACTIVATED"
        ]
    );
    let rows = run.table("Cluster Name");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0][..6],
        [
            "DefaultCluster".to_owned(),
            "broker-a".into(),
            "0".into(),
            cluster.broker_addr(),
            format!("Karman {}", env!("CARGO_PKG_VERSION")),
            "0.00".into()
        ]
    );
    assert_eq!(rows[0][9], "-", "Hour: the log is empty");
    assert_eq!(rows[0][11], "true", "ACTIVATED: a master");
    let space: f64 = rows[0][10].parse().unwrap();
    assert!(space > 0.0 && space < 1.0, "SPACE {space}");
    cluster
        .admin(&["sendMessage", "-t", "TopicTest", "-p", "hello"])
        .ok();
    let rows = cluster.admin(&["clusterList"]).ok().table("Cluster Name");
    let hours: f64 = rows[0][9].parse().unwrap();
    assert!((0.0..0.1).contains(&hours), "Hour {hours}");

    let json = cluster.admin(&["clusterList", "--json"]).ok().json();
    let broker = &json["brokers"][0];
    assert_eq!(broker["cluster"], "DefaultCluster");
    assert_eq!(broker["brokerId"], 0);
    assert_eq!(broker["addr"], cluster.broker_addr());
    assert_eq!(broker["runtimeInfo"]["brokerName"], "broker-a");

    let more = cluster
        .admin(&["clusterList", "-m", "-c", "DefaultCluster"])
        .ok();
    assert_eq!(
        more.header("Cluster Name"),
        [
            "#Cluster Name",
            "#Broker Name",
            "#InTPS",
            "#OutTPS",
            "#InTotalYest",
            "#OutTotalYest",
            "#InTotalToday",
            "#OutTotalToday"
        ]
    );
    cluster.admin(&["clusterList", "-c", "Nowhere"]).fails(
        1,
        "cluster Nowhere is not registered with the NameServer (clusters known: DefaultCluster)",
    );
}

#[test]
fn broker_status_prints_runtime_counters() {
    let cluster = Cluster::start();
    let addr = cluster.broker_addr();
    let run = cluster.admin(&["brokerStatus", "-b", &addr]).ok();
    let line = run
        .lines()
        .into_iter()
        .find(|l| l.starts_with("brokerAddr:"))
        .unwrap()
        .to_owned();
    assert!(line.ends_with(&format!("  {addr}")), "{line}");
    assert!(run.stdout.contains("msgPutTotalTodayNow:"));
    let by_cluster = cluster
        .admin(&["brokerStatus", "-c", "DefaultCluster", "--json"])
        .ok()
        .json();
    assert_eq!(
        by_cluster["brokers"][addr.as_str()]["brokerName"],
        "broker-a"
    );
    cluster.admin(&["brokerStatus"]).fails(2, "--brokerAddr");
}

#[test]
fn get_and_update_broker_config() {
    let cluster = Cluster::start();
    let addr = cluster.broker_addr();
    let run = cluster.admin(&["getBrokerConfig", "-b", &addr]).ok();
    let line = run
        .lines()
        .into_iter()
        .find(|l| l.starts_with("brokerName "))
        .unwrap()
        .to_owned();
    assert!(line.ends_with("=  broker-a"), "{line}");

    let run = cluster
        .admin(&[
            "updateBrokerConfig",
            "-c",
            "DefaultCluster",
            "-k",
            "autoCreateSubscriptionGroup",
            "-v",
            "false",
        ])
        .ok();
    assert_eq!(
        run.lines(),
        [format!("update broker config success, {addr}").as_str()]
    );
    let json = cluster
        .admin(&["getBrokerConfig", "-c", "DefaultCluster", "--json"])
        .ok()
        .json();
    assert_eq!(
        json["brokers"][addr.as_str()]["autoCreateSubscriptionGroup"],
        "false"
    );

    cluster
        .admin(&[
            "updateBrokerConfig",
            "-b",
            &addr,
            "-k",
            "noSuchKey",
            "-v",
            "1",
        ])
        .fails(1, "unknown broker config key `noSuchKey`");
}

#[test]
fn wipe_and_add_write_perm_on_the_namesrv() {
    let cluster = Cluster::start();
    cluster.topic("Perm", 1);
    let namesrv = cluster.namesrv();
    let run = cluster.admin(&["wipeWritePerm", "-b", "broker-a"]).ok();
    let line = run.lines()[0].to_owned();
    assert!(
        line.starts_with(&format!(
            "wipe write perm of broker[broker-a] in name server[{namesrv}] OK, "
        )),
        "{line}"
    );
    let route = cluster
        .admin(&["topicRoute", "-t", "Perm", "--json"])
        .ok()
        .json();
    assert_eq!(route["queueDatas"][0]["perm"], 4, "read-only now");

    let json = cluster
        .admin(&["addWritePerm", "-b", "broker-a", "--json"])
        .ok()
        .json();
    assert_eq!(json["nameServers"][0]["addr"], namesrv);
    assert!(json["nameServers"][0]["topicCount"].as_i64().unwrap() >= 1);
    let route = cluster
        .admin(&["topicRoute", "-t", "Perm", "--json"])
        .ok()
        .json();
    assert_eq!(route["queueDatas"][0]["perm"], 6);

    cluster
        .admin(&["wipeWritePerm", "-b", &cluster.broker_addr()])
        .fails(1, "-b takes a broker name, not an address");
}

#[test]
fn update_and_delete_kv_config() {
    let cluster = Cluster::start();
    let run = cluster
        .admin(&["updateKvConfig", "-s", "NS", "-k", "key", "-v", "value"])
        .ok();
    assert_eq!(
        run.stdout,
        "create or update kv config to namespace success.\n"
    );
    let get = |cluster: &Cluster| {
        cluster.block_on(async {
            let admin = Admin::with_config(cluster.client()).await.unwrap();
            let value = admin.get_kv_config("NS", "key").await.unwrap();
            admin.shutdown().await;
            value
        })
    };
    assert_eq!(get(&cluster).as_deref(), Some("value"));
    let run = cluster
        .admin(&["deleteKvConfig", "-s", "NS", "-k", "key"])
        .ok();
    assert_eq!(run.stdout, "delete kv config from namespace success.\n");
    assert_eq!(get(&cluster), None);
}

// -------------------------------------------------------------------------------------
// Groups

#[test]
fn update_and_delete_sub_group() {
    let cluster = Cluster::start();
    let addr = cluster.broker_addr();
    let run = cluster
        .admin(&[
            "updateSubGroup",
            "-c",
            "DefaultCluster",
            "-g",
            "billing",
            "-r",
            "3",
            "-o",
            "true",
        ])
        .ok();
    assert_eq!(
        run.lines()[0],
        format!("create subscription group to {addr} success.")
    );
    assert!(run.lines()[1].starts_with(
        "SubscriptionGroupConfig [groupName=billing, consumeEnable=true, consumeFromMinEnable=false, consumeBroadcastEnable=false, consumeMessageOrderly=true, retryQueueNums=1, retryMaxTimes=3,"
    ));
    let json = cluster
        .admin(&[
            "updateSubGroup",
            "-b",
            &addr,
            "-g",
            "billing",
            "-s",
            "false",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(json["groupConfig"]["consumeEnable"], false);

    let run = cluster
        .admin(&["deleteSubGroup", "-b", &addr, "-g", "billing", "-r", "true"])
        .ok();
    assert_eq!(
        run.stdout,
        format!("delete subscription group [billing] from broker [{addr}] success.\n")
    );
    let run = cluster
        .admin(&["deleteSubGroup", "-c", "DefaultCluster", "-g", "billing"])
        .ok();
    assert!(
        run.stdout
            .contains("delete topic [%RETRY%billing] from cluster [DefaultCluster] success.")
    );
    cluster
        .admin(&["deleteSubGroup", "-g", "billing"])
        .fails(2, "--brokerAddr");
}

/// A lite-pull consumer of `group` subscribed to `topic`, kept alive by the returned value.
fn online_consumer(cluster: &Cluster, group: &str, topic: &str) -> LitePullConsumer {
    let consumer = cluster.block_on(async {
        let consumer = LitePullConsumer::builder()
            .client_config(cluster.client())
            .group(group)
            .build()
            .await
            .unwrap();
        consumer.subscribe(topic, "*").await.unwrap();
        consumer
    });
    let group = group.to_owned();
    cluster.eventually("the consumer to be online", move |admin| {
        let group = group.clone();
        async move {
            let found = admin.consumer_connection(&group).await.ok();
            (admin, found)
        }
    });
    consumer
}

#[test]
fn consumer_progress_shows_lag_per_queue_and_a_summary() {
    let cluster = Cluster::start();
    cluster.topic("Work", 2);
    cluster.send(
        vec![
            Message::new("Work", "1"),
            Message::new("Work", "2"),
            Message::new("Work", "3"),
        ],
        Some(MessageQueue::new("Work", "broker-a", 0)),
    );
    cluster
        .admin(&[
            "resetOffsetByTime",
            "-g",
            "workers",
            "-t",
            "Work",
            "-b",
            &cluster.broker_addr(),
            "-q",
            "0",
            "-o",
            "1",
        ])
        .ok();
    let run = cluster
        .admin(&["consumerProgress", "-g", "workers", "-t", "Work"])
        .ok();
    assert_eq!(
        run.header("Topic"),
        [
            "#Topic",
            "#Broker Name",
            "#QID",
            "#Broker Offset",
            "#Consumer Offset",
            "#Diff",
            "#Inflight",
            "#LastTime"
        ]
    );
    let rows = run.table("Topic");
    assert_eq!(rows[0][..7], ["Work", "broker-a", "0", "3", "1", "2", "0"]);
    assert_eq!(rows[1], ["Work", "broker-a", "1", "0", "0", "0", "0", "-"]);
    assert!(
        run.stdout.contains("\nConsume Diff Total: 2\n"),
        "{}",
        run.stdout
    );

    // Without a consumer ever online the group has no retry topic to find brokers by.
    cluster
        .admin(&["consumerProgress", "-g", "workers"])
        .fails(1, "no consumer of group workers has ever connected");

    let consumer = online_consumer(&cluster, "workers", "Work");
    let run = cluster
        .admin(&["consumerProgress", "-g", "workers", "-s", "true", "--json"])
        .ok();
    let json = run.json();
    assert_eq!(json["diffTotal"], 2);
    assert_eq!(json["queues"][0]["clientIp"], "127.0.0.1", "{json}");
    let summary = cluster.admin(&["consumerProgress"]).ok();
    assert_eq!(
        summary.header("Group"),
        [
            "#Group",
            "#Count",
            "#Version",
            "#Type",
            "#Model",
            "#TPS",
            "#Diff Total"
        ]
    );
    let rows = summary.table("Group");
    let workers = rows.iter().find(|r| r[0] == "workers").unwrap();
    assert_eq!(
        workers[1..],
        ["1", "V5_3_3", "PULL", "CLUSTERING", "0", "2"]
    );
    cluster.block_on(consumer.shutdown());
}

#[test]
fn consumer_connection_lists_clients_and_subscriptions() {
    let cluster = Cluster::start();
    cluster.topic("Feed", 1);
    cluster
        .admin(&["consumerConnection", "-g", "readers"])
        .fails(1, "no consumer of group readers has ever connected");
    let consumer = online_consumer(&cluster, "readers", "Feed");
    let run = cluster.admin(&["consumerConnection", "-g", "readers"]).ok();
    assert_eq!(
        run.header("ClientId"),
        ["#ClientId", "#ClientAddr", "#Language", "#Version"]
    );
    let clients = run.table("ClientId");
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0][2..], ["JAVA", "V5_3_3"]);
    assert_eq!(run.table("Topic"), [["Feed", "*"]]);
    assert!(
        run.stdout
            .contains("\nConsumeType: CONSUME_ACTIVELY\nMessageModel: CLUSTERING\n")
    );
    let json = cluster
        .admin(&[
            "consumerConnection",
            "-g",
            "readers",
            "-b",
            &cluster.broker_addr(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(json["group"], "readers");
    assert_eq!(json["connectionSet"].as_array().unwrap().len(), 1);
    cluster.block_on(consumer.shutdown());
}

#[test]
fn producer_connection_lists_live_producers() {
    let cluster = Cluster::start();
    cluster.topic("Out", 1);
    let producer = cluster.block_on(async {
        let producer = Producer::builder()
            .client_config(cluster.client())
            .group("senders")
            .build()
            .await
            .unwrap();
        producer.send(Message::new("Out", "x")).await.unwrap();
        producer
    });
    cluster.eventually("the producer heartbeat", |admin| async move {
        let found = admin.producer_connection("senders", "Out").await.ok();
        (admin, found)
    });
    let run = cluster
        .admin(&["producerConnection", "-g", "senders", "-t", "Out"])
        .ok();
    assert_eq!(
        run.header("No"),
        ["#No", "#ClientId", "#ClientAddr", "#Language", "#Version"]
    );
    let rows = run.table("No");
    assert_eq!(rows[0][0], "0001");
    assert_eq!(rows[0][3..], ["JAVA", "V5_3_3"]);
    cluster.block_on(producer.shutdown());
    cluster
        .admin(&["producerConnection", "-g", "nobody", "-t", "Out"])
        .fails(
            1,
            "no producer of group nobody is connected to the brokers of topic Out",
        );
}

#[test]
fn reset_offset_by_time_moves_every_queue_or_one() {
    let cluster = Cluster::start();
    cluster.topic("Replay", 2);
    cluster.send(
        vec![Message::new("Replay", "1"), Message::new("Replay", "2")],
        Some(MessageQueue::new("Replay", "broker-a", 1)),
    );
    let run = cluster
        .admin(&["resetOffsetByTime", "-g", "g", "-t", "Replay", "-s", "0"])
        .ok();
    assert_eq!(
        run.lines()[0],
        "reset consumer offsets of group [g] on topic [Replay] to the first message stored (timestamp 0):"
    );
    assert_eq!(
        run.table("Broker Name"),
        [["broker-a", "0", "0"], ["broker-a", "1", "0"]]
    );
    let json = cluster
        .admin(&[
            "resetOffsetByTime",
            "-g",
            "g",
            "-t",
            "Replay",
            "-s",
            "now",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        json["offsets"][1]["offset"], 2,
        "now: past the last message"
    );
    let json = cluster
        .admin(&[
            "resetOffsetByTime",
            "-g",
            "g",
            "-t",
            "Replay",
            "-b",
            &cluster.broker_addr(),
            "-q",
            "1",
            "-o",
            "1",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        json["offsets"],
        serde_json::json!([{"brokerName": "broker-a", "queueId": 1, "offset": 1}])
    );
    cluster
        .admin(&["resetOffsetByTime", "-g", "g", "-t", "Replay", "-o", "1"])
        .fails(2, "-o needs -q");
    cluster
        .admin(&["resetOffsetByTime", "-g", "g", "-t", "Replay"])
        .fails(2, "pass -s TIME");
}

// -------------------------------------------------------------------------------------
// Messages

#[test]
fn send_message_prints_where_it_went() {
    let cluster = Cluster::start();
    cluster.topic("Send", 4);
    let run = cluster
        .admin(&[
            "sendMessage",
            "-t",
            "Send",
            "-p",
            "hello",
            "-k",
            "order-1",
            "-c",
            "TagA",
        ])
        .ok();
    assert_eq!(
        run.header("Broker Name"),
        [
            "#Broker Name",
            "#QID",
            "#Send Result",
            "#MsgId",
            "#Offset Msg ID"
        ]
    );
    let rows = run.table("Broker Name");
    assert_eq!(rows[0][0], "broker-a");
    assert_eq!(rows[0][2], "SEND_OK");
    let json = cluster
        .admin(&[
            "sendMessage",
            "-t",
            "Send",
            "-p",
            "again",
            "-b",
            "broker-a",
            "-i",
            "3",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(json["queueId"], 3);
    assert_eq!(json["sendStatus"], "SEND_OK");
    assert!(json["queueOffset"].is_i64(), "{json}");
    cluster
        .admin(&["sendMessage", "-t", "Send", "-p", "x", "-i", "3"])
        .fails(2, "-i needs -b");
    cluster
        .admin(&["sendMessage", "-t", "Send", "-p", "x", "-b", "broker-z"])
        .fails(1, "has no writable queue");
}

#[test]
fn query_msg_by_id_key_and_unique_key() {
    let cluster = Cluster::start();
    cluster.topic("Find", 2);
    let sent = cluster.send(
        vec![
            Message::new("Find", "needle")
                .with_keys(["k-1"])
                .with_tags("TagN"),
        ],
        Some(MessageQueue::new("Find", "broker-a", 1)),
    );
    let (msg_id, offset_id) = (sent[0].msg_id.clone(), sent[0].offset_msg_id.clone());

    let run = cluster.admin(&["queryMsgById", "-i", &offset_id]).ok();
    let block = run.lines();
    assert_eq!(block[0], format!("OffsetID:          {offset_id}"));
    assert!(block.contains(&"Topic:             Find"));
    assert!(block.contains(&"Tags:              [TagN]"));
    assert!(block.contains(&"Keys:              [k-1]"));
    assert!(block.contains(&"Queue ID:          1"));
    assert!(block.contains(&"Message Body:      needle"));
    // A client id is found through the index when the topic is given.
    let json = cluster
        .admin(&["queryMsgById", "-i", &msg_id, "-t", "Find", "--json"])
        .ok()
        .json();
    assert_eq!(json["messages"][0]["offsetMsgId"], offset_id);
    cluster
        .admin(&["queryMsgById", "-i", &msg_id])
        .fails(2, "is not an offset message id");

    let run = cluster
        .admin(&["queryMsgByKey", "-t", "Find", "-k", "k-1"])
        .ok();
    assert_eq!(
        run.header("Message ID"),
        ["#Message ID", "#QID", "#Offset", "#Store Time"]
    );
    let rows = run.table("Message ID");
    assert_eq!(rows[0][..3], [msg_id.clone(), "1".into(), "0".into()]);
    let none = cluster
        .admin(&["queryMsgByKey", "-t", "Find", "-k", "absent"])
        .ok();
    assert!(none.table("Message ID").is_empty());

    let run = cluster
        .admin(&["queryMsgByUniqueKey", "-i", &msg_id, "-t", "Find"])
        .ok();
    assert!(
        run.lines()
            .contains(&format!("Message ID:        {msg_id}").as_str())
    );
    cluster
        .admin(&[
            "queryMsgByUniqueKey",
            "-i",
            "0A0000000000000000000000000000FF",
            "-t",
            "Find",
        ])
        .fails(
            1,
            "no message with client id (UNIQ_KEY) 0A0000000000000000000000000000FF",
        );
}

#[test]
fn query_msg_by_offset_reads_one_queue_position() {
    let cluster = Cluster::start();
    cluster.topic("At", 1);
    cluster.send(
        vec![Message::new("At", "zero"), Message::new("At", "one")],
        Some(MessageQueue::new("At", "broker-a", 0)),
    );
    let run = cluster
        .admin(&[
            "queryMsgByOffset",
            "-t",
            "At",
            "-b",
            "broker-a",
            "-i",
            "0",
            "-o",
            "1",
        ])
        .ok();
    assert!(run.lines().contains(&"Queue Offset:      1"));
    assert!(run.lines().contains(&"Message Body:      one"));
    cluster
        .admin(&[
            "queryMsgByOffset",
            "-t",
            "At",
            "-b",
            "broker-a",
            "-i",
            "0",
            "-o",
            "5",
        ])
        .fails(
            1,
            "no message at offset 5 of At queue 0 on broker-a: the queue holds offsets 0 to 1",
        );
    cluster
        .admin(&[
            "queryMsgByOffset",
            "-t",
            "At",
            "-b",
            "broker-z",
            "-i",
            "0",
            "-o",
            "0",
        ])
        .fails(
            1,
            "topic At has no readable queue on broker broker-z (it is on: broker-a)",
        );
}

#[test]
fn consume_message_reads_without_committing() {
    let cluster = Cluster::start();
    cluster.topic("Read", 2);
    let q0 = MessageQueue::new("Read", "broker-a", 0);
    cluster.send(
        (0..5)
            .map(|i| Message::new("Read", format!("m{i}")).with_tags("T"))
            .collect(),
        Some(q0),
    );
    let run = cluster
        .admin(&["consumeMessage", "-t", "Read", "-c", "3"])
        .ok();
    assert_eq!(
        run.header("Broker Name"),
        [
            "#Broker Name",
            "#QID",
            "#Offset",
            "#Message ID",
            "#Tags",
            "#Keys",
            "#Store Time",
            "#Body"
        ]
    );
    let bodies: Vec<String> = run
        .table("Broker Name")
        .iter()
        .map(|r| r.last().unwrap().clone())
        .collect();
    assert_eq!(bodies, ["m0", "m1", "m2"]);
    let json = cluster
        .admin(&[
            "consumeMessage",
            "-t",
            "Read",
            "-b",
            "broker-a",
            "-i",
            "0",
            "-o",
            "3",
            "--json",
        ])
        .ok()
        .json();
    let offsets: Vec<i64> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["queueOffset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, [3, 4]);
    let stats = cluster
        .admin(&[
            "consumerProgress",
            "-g",
            "TOOLS_CONSUMER",
            "-t",
            "Read",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(stats["queues"][0]["consumerOffset"], 0, "nothing committed");
    cluster
        .admin(&["consumeMessage", "-t", "Read", "-i", "0"])
        .fails(2, "-i needs -b");
}

#[test]
fn print_msg_dumps_every_queue_with_a_tag_filter() {
    let cluster = Cluster::start();
    cluster.topic("Dump", 2);
    cluster.send(
        vec![
            Message::new("Dump", "a").with_tags("TagA"),
            Message::new("Dump", "b").with_tags("TagB"),
        ],
        Some(MessageQueue::new("Dump", "broker-a", 1)),
    );
    let run = cluster.admin(&["printMsg", "-t", "Dump"]).ok();
    assert_eq!(
        run.lines()[0],
        "minOffset=0, maxOffset=0, MessageQueue [topic=Dump, brokerName=broker-a, queueId=0]"
    );
    assert!(run.stdout.contains(
        "minOffset=0, maxOffset=2, MessageQueue [topic=Dump, brokerName=broker-a, queueId=1]"
    ));
    let bodies: Vec<String> = run
        .table("Broker Name")
        .iter()
        .map(|r| r.last().unwrap().clone())
        .collect();
    assert_eq!(bodies, ["a", "b"]);

    let filtered = cluster
        .admin(&["printMsg", "-t", "Dump", "-s", "TagB", "-d", "false"])
        .ok();
    assert!(!filtered.header("Broker Name").contains(&"#Body".to_owned()));
    let rows = filtered.table("Broker Name");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][4], "TagB");
    let json = cluster
        .admin(&["printMsg", "-t", "Dump", "--json"])
        .ok()
        .json();
    assert_eq!(json["queues"][1]["messages"][1]["body"], "b");
}
