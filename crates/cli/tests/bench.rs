//! `karman bench`: the real binary against an in-process NameServer and broker on
//! ephemeral ports. Counts are small; what is checked is that every mode delivers what
//! it counts and that the `--json` last line carries the summary scripts read.

use serde_json::Value;
use support::Cluster;

mod support;

impl Cluster {
    /// Runs `karman bench <args> -n <namesrv> --json`.
    fn bench(&self, args: &[&str]) -> std::process::Output {
        support::karman()
            .arg("bench")
            .args(args)
            .args(["-n", &self.namesrv(), "--json", "--report-interval", "1"])
            .output()
            .unwrap()
    }
}

/// The last stdout line of a successful run, parsed.
#[track_caller]
fn summary(output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let value: Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    for field in [
        "tps",
        "mb_per_sec",
        "p50_ms",
        "p99_ms",
        "p999_ms",
        "max_ms",
        "sent",
        "failed",
    ] {
        assert!(value.get(field).is_some(), "{field} missing in {last}");
    }
    value
}

#[test]
fn every_send_mode_delivers_its_count_and_a_consumer_drains_them_from_the_first_offset() {
    let cluster = Cluster::start();
    let topic = "BenchTopic";
    let runs: &[(&[&str], u64)] = &[
        (&["--mode", "sync"], 100),
        (&["--mode", "async"], 100),
        (&["--mode", "oneway"], 100),
        (&["--mode", "sync", "--batch", "8"], 100),
        (
            &["--mode", "async", "--batch", "8", "--in-flight", "4"],
            200,
        ),
    ];
    let mut acked = 0;
    for (args, count) in runs {
        let count_text = count.to_string();
        let mut all = vec!["producer", "-t", topic, "-w", "4", "-q", &count_text];
        all.extend_from_slice(args);
        let result = summary(&cluster.bench(&all));
        assert_eq!(result["failed"], 0, "{args:?}: {result}");
        // Oneway sends count once written; the consumer below sees whether they landed.
        assert_eq!(result["sent"], *count, "{args:?}: {result}");
        acked += count;
        assert!(result["mb_per_sec"].as_f64().unwrap() > 0.0, "{result}");
    }
    let acked_text = acked.to_string();
    let drained = summary(&cluster.bench(&[
        "consumer",
        "-t",
        topic,
        "-g",
        "bench_drain",
        "--from-first",
        "-q",
        &acked_text,
        "--duration",
        "60",
    ]));
    assert_eq!(drained["sent"], acked, "{drained}");
}

#[test]
fn a_oneway_batch_is_refused_as_a_configuration_error() {
    let cluster = Cluster::start();
    let output = cluster.bench(&["producer", "--mode", "oneway", "--batch", "4", "-q", "8"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("never oneway"), "{stderr}");
}
