//! Every karman-client example (`examples/*.rs`) runs against `karman standalone`: the
//! binary is started as a process on ephemeral ports with a temp data dir, each example
//! runs with `NAMESRV_ADDR` pointing at it, must exit 0 within its time limit and print
//! what it is about. On failure the example's and the server's output are printed.
//!
//! The examples are karman-client's; this test builds them first with the cargo that runs
//! it (see `built_examples`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// broker.conf for the run: SQL92 filtering on (sql92_filter) and quick transaction
/// check-backs (transaction_producer waits for one).
const BROKER_CONF: &str = "\
brokerClusterName=DefaultCluster
brokerName=broker-a
enablePropertyFilter=true
transactionCheckInterval=1000
transactionTimeOut=1000
";

/// One example: its name, a time limit, text its output must contain, and text it must
/// not contain.
struct Example {
    name: &'static str,
    limit: Duration,
    prints: &'static [&'static str],
    never_prints: &'static [&'static str],
    /// For an example that runs until Ctrl-C: SIGINT once it has printed everything in
    /// `prints`.
    until_ctrl_c: bool,
}

const fn example(
    name: &'static str,
    limit_secs: u64,
    prints: &'static [&'static str],
    never_prints: &'static [&'static str],
) -> Example {
    Example {
        name,
        limit: Duration::from_secs(limit_secs),
        prints,
        never_prints,
        until_ctrl_c: false,
    }
}

impl Example {
    const fn until_ctrl_c(mut self) -> Self {
        self.until_ctrl_c = true;
        self
    }
}

/// In run order: producers fill the topics the consumers then read.
const EXAMPLES: &[Example] = &[
    // The two README snippets.
    example("quickstart_producer", 30, &["to TopicTest@broker-a#"], &[]),
    example("quickstart_consumer", 60, &[": hello"], &[]).until_ctrl_c(),
    example(
        "producer_sync",
        30,
        &["SendOk msgId=", "TopicTest@broker-a#"],
        &[],
    ),
    example("producer_async", 30, &["sent "], &["failed:"]),
    example(
        "producer_oneway",
        30,
        &["10 oneway messages handed to the broker"],
        &[],
    ),
    example(
        "batch_producer",
        30,
        &["1000 messages stored in BatchTest@broker-a#"],
        &[],
    ),
    example(
        "delay_and_timer",
        30,
        &["delay-level message", "timer message"],
        &[],
    ),
    example("ordered_producer", 30, &["order-4 done -> queue"], &[]),
    // 1 quickstart + 10 sync + 100 async + 10 oneway messages in TopicTest.
    example(
        "push_consumer",
        60,
        &["Hello Karman 0", "async 99", "log line 9"],
        &[],
    ),
    example("broadcast_consumer", 60, &["got "], &[]),
    example(
        "lite_pull_consumer",
        60,
        &[
            "polled 121 messages from TopicTest@broker-a#",
            "after seek: ",
        ],
        &[],
    ),
    example(
        "orderly_consumer",
        60,
        &["order-42 created", "order-42 done"],
        &[],
    ),
    example(
        "tag_filter",
        60,
        &["tagged TagA", "tagged TagC"],
        &["tagged TagB"],
    ),
    example(
        "sql92_filter",
        60,
        &["reading 0 region=", "reading 2 region="],
        &["reading 1", "reading 3"],
    ),
    example(
        "transaction_producer",
        90,
        &[
            "order 0: RollbackMessage",
            "order 1: Unknown",
            "order 4: CommitMessage",
            "broker checks back on",
            "(order 1)",
        ],
        &[],
    ),
    example(
        "idempotent_consumer",
        60,
        &["charging once for Some(\"payment-7\")"],
        &[],
    ),
];

#[test]
fn every_example_runs_against_karman_standalone() {
    let examples_dir = built_examples();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("broker.conf");
    std::fs::write(&conf, BROKER_CONF).unwrap();
    let server = Standalone::start(dir.path(), &conf);
    eprintln!("karman standalone: NameServer {}", server.namesrv_addr);

    // Every example's name appears in README's list; every example file is run here.
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let files: Vec<String> = std::fs::read_dir(workspace_root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".rs").map(str::to_owned))
        .collect();
    for file in &files {
        assert!(
            EXAMPLES.iter().any(|e| e.name == file),
            "examples/{file}.rs is not run by this test"
        );
        assert!(
            readme.contains(file.as_str()),
            "README does not list {file}"
        );
    }

    // The README's producer and consumer are these two examples, verbatim.
    for name in ["quickstart_producer", "quickstart_consumer"] {
        let source =
            std::fs::read_to_string(workspace_root().join("examples").join(format!("{name}.rs")))
                .unwrap();
        let code = source
            .split_once("#![allow(clippy::print_stdout)]\n\n")
            .map_or(source.as_str(), |(_, code)| code);
        assert!(
            readme.contains(code),
            "README's snippet differs from examples/{name}.rs; paste:\n{code}"
        );
    }

    for example in EXAMPLES {
        let started = Instant::now();
        let output = run_example(
            &examples_dir.join(example.name),
            &server,
            dir.path(),
            example,
        );
        let elapsed = started.elapsed();
        let fail = |why: String| -> ! {
            panic!(
                "example {} {why} after {elapsed:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- karman standalone ---\n{}",
                example.name,
                output.stdout,
                output.stderr,
                server.log()
            )
        };
        match output.status {
            Some(0) => {}
            Some(code) => fail(format!("exited {code}")),
            None => fail(format!("did not finish within {:?}", example.limit)),
        }
        for text in example.prints {
            if !output.stdout.contains(text) {
                fail(format!("did not print {text:?}"));
            }
        }
        for text in example.never_prints {
            if output.stdout.contains(text) {
                fail(format!("printed {text:?}"));
            }
        }
        if example.name == "idempotent_consumer" {
            let charges = output.stdout.matches("charging once").count();
            if charges != 1 {
                fail(format!(
                    "charged {charges} times for one payment sent twice"
                ));
            }
        }
        eprintln!(
            "example {:<22} ok in {elapsed:.1?} ({} lines)",
            example.name,
            output.stdout.lines().count()
        );
    }
    server.stop();
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// The directory of the example binaries of this build (`<target>/<profile>/examples`),
/// brought up to date first: `cargo test --all-targets` builds examples only as test
/// harnesses. The build is workspace-wide on purpose: it then resolves the same features
/// as the test build and reuses its dependencies (25 s), where `-p karman-client`
/// recompiled half the dependency tree (minutes on a 2-core CI machine).
fn built_examples() -> PathBuf {
    // This test runs as <target>/<profile>/deps/examples-<hash>.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let dir = profile_dir.join("examples");
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(workspace_root())
        .args(["build", "--locked", "--workspace", "--examples"]);
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        build.env("CARGO_TARGET_DIR", target);
    }
    let status = build.status().expect("run cargo to build the examples");
    assert!(status.success(), "building the examples failed");
    dir
}

/// `karman standalone` as a child process; stderr is kept for failure reports.
struct Standalone {
    child: Child,
    namesrv_addr: String,
    log: Arc<Mutex<String>>,
}

impl Standalone {
    fn start(dir: &Path, conf: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_karman"))
            .arg("standalone")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("-c")
            .arg(conf)
            .args([
                "--namesrv-port",
                "0",
                "--broker-port",
                "0",
                "--host",
                "127.0.0.1",
            ])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("karman standalone starts");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut namesrv_addr = None;
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            log.lock().unwrap().push_str(&line);
            if let Some(addr) = line.trim().strip_prefix("NameServer") {
                namesrv_addr = Some(addr.trim().to_owned());
            }
            if line.trim_start().starts_with("Broker") {
                break;
            }
            line.clear();
        }
        let Some(namesrv_addr) = namesrv_addr else {
            let _ = child.kill();
            panic!(
                "karman standalone never said where it listens:\n{}",
                log.lock().unwrap()
            );
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Self {
            child,
            namesrv_addr,
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then a clean exit within 30 s.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "standalone stopped with {status:?}:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "standalone did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        // A failed test still stops the server.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Output {
    /// The exit code; `None` when the example was killed at its time limit (or by a
    /// signal).
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_example(binary: &Path, server: &Standalone, home: &Path, example: &Example) -> Output {
    let mut child = Command::new(binary)
        .env("NAMESRV_ADDR", &server.namesrv_addr)
        // Broadcasting consumers keep offsets under $HOME/.rocketmq_offsets.
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let (stdout, stdout_reader) = drain(child.stdout.take().unwrap());
    let (stderr, stderr_reader) = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + example.limit;
    let mut interrupted = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if example.until_ctrl_c && !interrupted {
            let printed = stdout.lock().unwrap().clone();
            if example.prints.iter().all(|text| printed.contains(text)) {
                let sent = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(sent.success());
                interrupted = true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes close when the example exits; the readers then have everything.
    stdout_reader.join().unwrap();
    stderr_reader.join().unwrap();
    let text = |pipe: &Arc<Mutex<String>>| pipe.lock().unwrap().clone();
    Output {
        status,
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

/// Reads a pipe into a shared string until it closes.
fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, reader)
}
