//! docs/ADMIN.md: every `karman admin` subcommand with its options (from `--help`) and a
//! real invocation with the output it printed, against a live `karman standalone` on the
//! default ports 9876/10911, with `TZ=UTC`.
//!
//! Regenerate: `KARMAN_UPDATE_DOCS=1 cargo test -p karman --test admin_docs` (needs ports
//! 9876 and 10911 free). Without the variable the test only checks that every subcommand
//! the binary has is documented, since the examples hold times, ids and addresses.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use karman_client::ClientConfig;
use karman_client::consumer::LitePullConsumer;
use karman_client::producer::Producer;
use support::karman;

mod support;

const NAMESRV: &str = "127.0.0.1:9876";
const BROKER: &str = "127.0.0.1:10911";
/// Long outputs (getBrokerConfig, brokerStatus) are cut to this many lines in the page.
const EXAMPLE_LINES_MAX: usize = 40;

fn docs_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/ADMIN.md")
}

/// The subcommand names `karman admin --help` lists.
fn subcommands() -> Vec<String> {
    let output = karman().args(["admin", "--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn docs_admin_md_documents_every_subcommand() {
    if std::env::var_os("KARMAN_UPDATE_DOCS").is_some() {
        std::fs::write(docs_path(), generate()).unwrap();
    }
    let page = std::fs::read_to_string(docs_path()).unwrap_or_default();
    let names = subcommands();
    assert_eq!(names.len(), 26, "{names:?}");
    for name in names {
        assert!(
            page.contains(&format!("\n### {name}\n"))
                && page.contains(&format!("karman admin {name} ")),
            "docs/ADMIN.md has no example of {name}: run `KARMAN_UPDATE_DOCS=1 cargo test -p karman --test admin_docs` and commit it"
        );
    }
}

/// A `karman standalone` on the default ports, stopped on drop.
struct Standalone {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Standalone {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = karman()
            .args(["standalone", "-d"])
            .arg(dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "karman standalone exited before it was ready (are 9876 and 10911 free?)"
            );
            if line.contains("karman standalone ready") {
                break;
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while stderr.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        Self { child, _dir: dir }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The page, built up section by section.
struct Page {
    out: String,
}

impl Page {
    /// Runs `karman admin <name> -n NAMESRV <args>` and records it under `### name`
    /// (a second example of the same subcommand goes under the first).
    fn example(&mut self, name: &str, args: &str) -> String {
        let output = karman()
            .args(["admin", name, "-n", NAMESRV])
            .args(split_args(args))
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        let heading = format!("\n### {name}\n");
        if !self.out.contains(&heading) {
            self.out.push_str(&heading);
            self.options(name);
        }
        let command = format!("karman admin {name} -n {NAMESRV} {args}");
        let _ = writeln!(self.out, "\n```console\n$ {}", command.trim_end());
        let lines: Vec<&str> = stdout.lines().collect();
        for line in lines.iter().take(EXAMPLE_LINES_MAX) {
            let _ = writeln!(self.out, "{line}");
        }
        if lines.len() > EXAMPLE_LINES_MAX {
            let _ = writeln!(
                self.out,
                "... ({} more lines)",
                lines.len() - EXAMPLE_LINES_MAX
            );
        }
        for line in stderr.lines() {
            let _ = writeln!(self.out, "{line}");
        }
        let code = output.status.code().unwrap_or(-1);
        if code != 0 {
            let _ = writeln!(self.out, "$ echo $?\n{code}");
        }
        self.out.push_str("```\n");
        stdout
    }

    /// The subcommand's own options, from its `--help` (the global -n and --json left
    /// out), as a table.
    fn options(&mut self, name: &str) {
        let output = karman().args(["admin", name, "--help"]).output().unwrap();
        let help = String::from_utf8(output.stdout).unwrap();
        let about = help.lines().next().unwrap_or_default();
        let _ = writeln!(self.out, "\n{about}.\n\n| option | meaning |\n|---|---|");
        for (option, meaning) in help_options(&help) {
            if ["--namesrvAddr", "--json", "--help", "--version"]
                .iter()
                .any(|global| option.contains(global))
            {
                continue;
            }
            let _ = writeln!(self.out, "| `{option}` | {} |", meaning.replace('|', "\\|"));
        }
    }
}

/// (option, meaning) pairs of a clap help's Options section, in either of its layouts
/// (description on the same line, or on the lines below).
fn help_options(help: &str) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = Vec::new();
    for line in help
        .lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
    {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('-') && indent <= 6 {
            let (option, meaning) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
            options.push((option.trim().to_owned(), meaning.trim().to_owned()));
        } else if let Some((_, meaning)) = options.last_mut() {
            if !meaning.is_empty() {
                meaning.push(' ');
            }
            meaning.push_str(trimmed);
        }
    }
    options
}

/// Splits an example's arguments on spaces, keeping 'quoted words' together.
fn split_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut current = String::new();
    for c in args.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

const INTRO: &str = "# karman admin\n\n\
Generated from a live `karman standalone` (`KARMAN_UPDATE_DOCS=1 cargo test -p karman --test admin_docs`); \
do not edit by hand.\n\n\
`karman admin` is Karman's mqadmin: the same subcommand names (camelCase) and the same short options, \
so `mqadmin updateTopic -n 127.0.0.1:9876 -c DefaultCluster -t TopicTest` becomes \
`karman admin updateTopic -n 127.0.0.1:9876 -c DefaultCluster -t TopicTest`. It works against Karman \
and against Apache RocketMQ NameServers and brokers alike.\n\n\
- `-n host:port` (several: `;`-separated) names the NameServer; without it the `NAMESRV_ADDR` variable is used, \
and with neither the command stops with exit code 2.\n\
- Output is an aligned table (mqadmin's column names, `#`-prefixed) or a key/value block. `--json` prints one \
JSON document instead, for scripts. Times are local (`TZ` is honoured), to the millisecond; the examples \
below ran with `TZ=UTC`.\n\
- Exit codes: 0 success; 1 the command failed (one line on stderr: what went wrong and what to do); 2 bad \
arguments. A topic without a route says which cause it is: no broker registered, the topic missing from every \
broker (and whether `autoCreateTopicEnable` is on there), or a broker that has not registered it yet.\n\
- Options that take true/false take them as values (`-o true`), as mqadmin does. Times (`-s`, `-b`, `-e` \
where they are times) are `now`, epoch milliseconds or `yyyy-MM-dd#HH:mm:ss:SSS`.\n\n\
Differences from mqadmin: message bodies are printed (when UTF-8; control characters escaped) instead of \
being written under /tmp/rocketmq/msgbodys; consumeMessage and printMsg print a table rather than \
`MessageExt [...]` dumps; the message track after queryMsgById, the resend options of queryMsgById and \
queryMsgByUniqueKey (`-g`, `-d`), message trace (`sendMessage -m true`), printMsg's `-l` and charsets other \
than UTF-8 are not supported yet. Bad arguments exit 2 where mqadmin prints its help and exits 0.\n\n\
## Examples\n\n\
In the order they were run, against one standalone: a topic is created, messages sent and read, a group \
created and consumed by a client, and everything removed again.\n";

fn generate() -> String {
    let _standalone = Standalone::start();
    let mut page = Page {
        out: INTRO.to_owned(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = ClientConfig {
        namesrv_addr: NAMESRV.to_owned(),
        heartbeat_broker_interval: Duration::from_millis(200),
        ..ClientConfig::default()
    };

    page.example("clusterList", "");
    page.example("updateTopic", "-c DefaultCluster -t TopicTest -r 4 -w 4");
    page.example(
        "updateTopic",
        &format!("-b {BROKER} -t OrderTopic -o true --json"),
    );
    page.example("topicList", "");
    page.example("topicRoute", "-t TopicTest");
    page.example("topicRoute", "-t TopicTest -l");
    let sent = page.example(
        "sendMessage",
        "-t TopicTest -p 'Hello Karman' -k order-1001 -c TagA",
    );
    let row: Vec<&str> = sent
        .lines()
        .nth(1)
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let (msg_id, offset_msg_id) = (row[3].to_owned(), row[4].to_owned());
    page.example(
        "sendMessage",
        "-t TopicTest -p second -k order-1002 -c TagB -b broker-a -i 0 --json",
    );
    page.example("topicStatus", "-t TopicTest");
    page.example("queryMsgById", &format!("-i {offset_msg_id}"));
    page.example("queryMsgByKey", "-t TopicTest -k order-1001");
    page.example("queryMsgByUniqueKey", &format!("-t TopicTest -i {msg_id}"));
    page.example("queryMsgByOffset", "-t TopicTest -b broker-a -i 0 -o 0");
    page.example("consumeMessage", "-t TopicTest -c 10");
    page.example("printMsg", "-t TopicTest -s 'TagA || TagB'");
    page.example("updateSubGroup", "-c DefaultCluster -g GroupDemo");

    let (consumer, producer) = runtime.block_on(async {
        let consumer = LitePullConsumer::builder()
            .client_config(client.clone())
            .group("GroupDemo")
            .build()
            .await
            .unwrap();
        consumer.subscribe("TopicTest", "*").await.unwrap();
        let producer = Producer::builder()
            .client_config(client.clone())
            .group("ProducerDemo")
            .build()
            .await
            .unwrap();
        producer
            .send(karman_client::Message::new("TopicTest", "from a client"))
            .await
            .unwrap();
        // Wait until both heartbeats have reached the broker and the retry topic has a route.
        let admin = karman_client::Admin::with_config(client.clone())
            .await
            .unwrap();
        for _ in 0..200 {
            let consumer_seen = admin.consumer_connection("GroupDemo").await.is_ok();
            let producer_seen = admin
                .producer_connection("ProducerDemo", "TopicTest")
                .await
                .is_ok();
            if consumer_seen && producer_seen {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        admin.shutdown().await;
        (consumer, producer)
    });
    page.example("consumerConnection", "-g GroupDemo");
    page.example("consumerProgress", "-g GroupDemo -s true");
    page.example("consumerProgress", "");
    page.example("producerConnection", "-g ProducerDemo -t TopicTest");
    page.example("resetOffsetByTime", "-g GroupDemo -t TopicTest -s 0");
    runtime.block_on(async {
        consumer.shutdown().await;
        producer.shutdown().await;
    });

    page.example("brokerStatus", &format!("-b {BROKER}"));
    page.example("getBrokerConfig", &format!("-b {BROKER}"));
    page.example(
        "updateBrokerConfig",
        &format!("-b {BROKER} -k autoCreateTopicEnable -v false"),
    );
    page.example("topicRoute", "-t NoSuchTopic");
    page.example(
        "updateBrokerConfig",
        "-c DefaultCluster -k autoCreateTopicEnable -v true",
    );
    page.example("wipeWritePerm", "-b broker-a");
    page.example("addWritePerm", "-b broker-a");
    page.example(
        "updateKvConfig",
        "-s ORDER_TOPIC_CONFIG -k TopicTest -v broker-a:4",
    );
    page.example("deleteKvConfig", "-s ORDER_TOPIC_CONFIG -k TopicTest");
    page.example("deleteSubGroup", "-c DefaultCluster -g GroupDemo");
    page.example("deleteTopic", "-t TopicTest -c DefaultCluster");
    page.example("topicStatus", "-t TopicTest");
    page.out
}
