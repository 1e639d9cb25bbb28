//! Throughput and restart figures for docs/BENCHMARKS.md, measured beside the disk's own
//! bandwidth in the same run.
//!
//! ```text
//! cargo run --release -p karman-store --example store_throughput -- /work/bench-store [--restart-gib 10]
//! ```
//!
//! Phases (`KARMAN_BENCH_PHASES=async,sync,rolls,restart` selects): `dd` bandwidth (the
//! 4 GiB one with `async` only); 1 KiB ASYNC_FLUSH appends from 64 tasks; reading the
//! backlog back from the page cache; `sync`: write+fdatasync per message (the baseline,
//! in a sparse and in a zero-written file) and a bare group commit with no store work
//! beside SYNC_FLUSH with 1 and 64 concurrent appenders, with warmed and with sparse
//! segments; `rolls`: SYNC_FLUSH across several segment rolls, warming in the background;
//! restart of a large store after a clean shutdown, after a crash, and with the checkpoint
//! lost (full scan), warm and cold cache.
//! The directory is deleted at the end. Prints one `key value` line per figure (with the
//! load average where the machine is shared), then all of them as JSON.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use karman_store::{
    AcceptAll, AppendMessage, FlushDiskType, MessageStore, QueueOffset, StoreConfig,
};

// As in the `karman` binary: the store's appenders allocate records on tokio's threads
// that the writer frees, and glibc's allocator turns that into lock contention (a futex
// call per message or so in SYNC_FLUSH groups) that a broker never pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY_BYTES: usize = 1024;
const QUEUES: i32 = 8;

struct Report(Vec<(String, String)>);

impl Report {
    fn put(&mut self, key: &str, value: impl std::fmt::Display) {
        println!("{key} {value}");
        std::io::stdout().flush().unwrap();
        self.0.push((key.to_owned(), value.to_string()));
    }
}

/// A 1 KiB message with the properties a Java producer sends (UNIQ_KEY, WAIT, TAGS), so
/// the index has one key per message to write, as in production.
fn message(queue_id: i32, body: &Bytes, wait: bool) -> AppendMessage {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let properties =
        format!("UNIQ_KEY\x017F0000010001{seq:020X}\x02WAIT\x01true\x02TAGS\x01TagA\x02");
    AppendMessage {
        topic: "BenchTopic".to_owned(),
        queue_id,
        flag: 0,
        body: body.clone(),
        properties: Bytes::from(properties),
        sys_flag: 0,
        born_timestamp_ms: 1_700_000_000_000,
        born_host: std::net::SocketAddr::from(([127, 0, 0, 1], 54321)),
        store_host: std::net::SocketAddr::from(([127, 0, 0, 1], 10911)),
        reconsume_times: 0,
        prepared_transaction_offset: 0,
        wait_store_msg_ok: wait,
    }
}

/// `dd if=/dev/zero of=<dir>/dd.tmp bs=1M count=<mib> conv=fdatasync`, in bytes per second.
fn dd_bytes_per_sec(dir: &Path, mib: u64) -> f64 {
    let target = dir.join("dd.tmp");
    let out = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", target.display()))
        .args(["bs=1M", &format!("count={mib}"), "conv=fdatasync"])
        .output()
        .unwrap();
    std::fs::remove_file(&target).unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.contains("copied")).unwrap();
    let secs: f64 = line
        .split(", ")
        .nth(2)
        .unwrap()
        .trim_end_matches(" s")
        .parse()
        .unwrap();
    println!("dd: {line}");
    (mib << 20) as f64 / secs
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What [`append_concurrently`] measured.
struct Appended {
    secs: f64,
    record_bytes: u64,
    /// CPU time of the runtime's worker threads, which run the appenders' tasks.
    appenders_cpu_us: u64,
}

/// `tasks` tasks append `total` messages one at a time.
fn append_concurrently(store: &Arc<MessageStore>, tasks: u64, total: u64, wait: bool) -> Appended {
    let body = Bytes::from(vec![b'k'; BODY_BYTES]);
    let next = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let runtime = runtime();
    let started = Instant::now();
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let (store, next, bytes, body) =
                    (store.clone(), next.clone(), bytes.clone(), body.clone());
                tokio::spawn(async move {
                    let queue_id = (task % QUEUES as u64) as i32;
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        let r = store.append(message(queue_id, &body, wait)).await;
                        assert!(r.status.is_ok(), "{}", r.status);
                        bytes.fetch_add(r.record_bytes as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    let secs = started.elapsed().as_secs_f64();
    // The workers are this runtime's own, so their whole CPU time is this call's.
    let appenders_cpu_us = threads_cpu_us("tokio-rt");
    drop(runtime);
    Appended {
        secs,
        record_bytes: bytes.load(Ordering::Relaxed),
        appenders_cpu_us,
    }
}

fn config(dir: &Path, flush: FlushDiskType) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    config.flush_disk_type = flush;
    config
}

/// Reads every queue from offset 0; `copy` also copies each message (as a socket write would).
fn read_backlog(store: &MessageStore, copy: bool) -> (f64, u64) {
    let mut sink = vec![0u8; 512 * 1024];
    let started = Instant::now();
    let mut total = 0u64;
    for queue_id in 0..QUEUES {
        let mut offset = QueueOffset(0);
        loop {
            let pulled = store.get_message("BenchTopic", queue_id, offset, 32, 0, &AcceptAll);
            if pulled.messages.is_empty() {
                break;
            }
            let mut at = 0;
            for m in &pulled.messages {
                if copy {
                    sink[at..at + m.len()].copy_from_slice(m);
                    at += m.len();
                }
                total += m.len() as u64;
            }
            offset = pulled.next_begin_offset;
        }
    }
    std::hint::black_box(&sink);
    (started.elapsed().as_secs_f64(), total)
}

/// Writes back whatever earlier phases left dirty, so that it does not slow this phase.
fn settle_disk() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(1));
}

/// A 64 MiB file for the baseline. `warmed`: every page zero-written and synced first, as
/// the store warms its segments, so that the loop rewrites allocated blocks; otherwise
/// sized with `set_len` only (sparse, as an unwarmed segment), and then each call must use
/// a fresh one, since a rewrite would find its blocks allocated by the previous round.
fn baseline_file(dir: &Path, name: &str, warmed: bool) -> std::fs::File {
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .read(true)
        .open(&path)
        .unwrap();
    file.set_len(64 << 20).unwrap();
    if warmed {
        let zeros = vec![0u8; 1 << 20];
        for mib in 0..64 {
            file.write_all_at(&zeros, mib << 20).unwrap();
        }
        file.sync_all().unwrap();
    }
    file
}

/// Messages per second when every `records` records of a 1 KiB message (what the store's
/// record takes) cost one write + fdatasync, in a file sized up front like a commit-log
/// segment. `records` 1 is the baseline (one fsync per message); 64 is what a group
/// commit of 64 appenders could reach if nothing but its write and fsync took time.
fn fsync_rate(file: &std::fs::File, fsyncs: u64, records: usize) -> f64 {
    let buf = vec![b'f'; (BODY_BYTES + 100) * records];
    let len = file.metadata().unwrap().len();
    let started = Instant::now();
    for i in 0..fsyncs {
        file.write_all_at(&buf, (i * buf.len() as u64) % (len - buf.len() as u64))
            .unwrap();
        file.sync_data().unwrap();
    }
    (fsyncs * records as u64) as f64 / started.elapsed().as_secs_f64()
}

/// Messages per second of the bare group commit that no store built like this one can beat
/// on this machine: 64 tasks on the appenders' kind of runtime each hand a finished record
/// to one writer thread and wait for its answer; the writer writes whatever has arrived in
/// one `pwrite`, fsyncs once all 64 are in (it knows the group's size, so it never waits
/// on a gather deadline) and answers the group from one task spawned on the runtime. No
/// encoding, queue offsets, consume queue or index: only the write, the fsync and the
/// hand-offs between threads, which the store cannot avoid either.
fn bare_group_commit_rate(file: &std::fs::File, total: u64) -> f64 {
    const TASKS: usize = 64;
    let record_bytes = BODY_BYTES + 100;
    let wrap_at = file.metadata().unwrap().len() - (TASKS * record_bytes) as u64;
    let runtime = runtime();
    let handle = runtime.handle().clone();
    let (to_writer, from_tasks) =
        std::sync::mpsc::sync_channel::<(Vec<u8>, tokio::sync::oneshot::Sender<()>)>(1024);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut position = 0;
            let mut answered = 0;
            let mut group = Vec::with_capacity(TASKS * record_bytes);
            let mut waiting = Vec::with_capacity(TASKS);
            while let Ok(first) = from_tasks.recv() {
                // The last group of a run is short when `total` is not a multiple of 64.
                let group_size = TASKS.min(usize::try_from(total - answered).unwrap());
                group.clear();
                for (record, answer) in std::iter::once(first).chain(from_tasks.try_iter()) {
                    group.extend_from_slice(&record);
                    waiting.push(answer);
                    if waiting.len() == group_size {
                        break;
                    }
                }
                file.write_all_at(&group, position % wrap_at).unwrap();
                position += group.len() as u64;
                if waiting.len() == group_size {
                    file.sync_data().unwrap();
                    answered += group_size as u64;
                    let answers = std::mem::replace(&mut waiting, Vec::with_capacity(TASKS));
                    handle.spawn(async move {
                        for answer in answers {
                            let _ = answer.send(());
                        }
                    });
                }
            }
        });
        runtime.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (to_writer, next) = (to_writer.clone(), next.clone());
                    tokio::spawn(async move {
                        while next.fetch_add(1, Ordering::Relaxed) < total {
                            let (answer, answered) = tokio::sync::oneshot::channel();
                            to_writer.send((vec![b'b'; record_bytes], answer)).unwrap();
                            answered.await.unwrap();
                        }
                    })
                })
                .collect();
            drop(to_writer);
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
    total as f64 / started.elapsed().as_secs_f64()
}

/// CPU time (user + system, in µs at the kernel's tick) of this process's threads whose
/// name starts with `prefix`, so that a round can say where its CPU went.
fn threads_cpu_us(prefix: &str) -> u64 {
    let ticks_per_sec = 100;
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        if !name.starts_with(prefix) {
            continue;
        }
        // Fields after the parenthesised name: state is the 1st, utime the 12th.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    ticks * 1_000_000 / ticks_per_sec
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn drop_caches() -> bool {
    Command::new("sh")
        .args(["-c", "sync && echo 3 > /proc/sys/vm/drop_caches"])
        .status()
        .is_ok_and(|s| s.success())
}

fn timed_open(dir: &Path) -> (f64, MessageStore) {
    let started = Instant::now();
    let store = MessageStore::open(config(dir, FlushDiskType::AsyncFlush)).unwrap();
    (started.elapsed().as_secs_f64(), store)
}

fn fill_gib(store: &Arc<MessageStore>, gib: u64) {
    let body = Bytes::from(vec![b'r'; BODY_BYTES]);
    let batches = (gib << 30) / ((BODY_BYTES as u64 + 120) * 32);
    let next = Arc::new(AtomicU64::new(0));
    runtime().block_on(async {
        let handles: Vec<_> = (0..8)
            .map(|task| {
                let (store, next, body) = (store.clone(), next.clone(), body.clone());
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < batches {
                        let batch = (0..32).map(|_| message(task, &body, false)).collect();
                        assert!(store.append_batch(batch).await.status.is_ok());
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
}

fn restart_phase(dir: &Path, gib: u64, report: &mut Report) {
    let dir = dir.join("restart");
    let store = Arc::new(MessageStore::open(config(&dir, FlushDiskType::AsyncFlush)).unwrap());
    let started = Instant::now();
    fill_gib(&store, gib);
    report.put("restart_store_bytes", store.max_physical_offset());
    report.put(
        "restart_fill_secs",
        format!("{:.1}", started.elapsed().as_secs_f64()),
    );
    Arc::into_inner(store).unwrap().shutdown().unwrap();
    let (secs, store) = timed_open(&dir);
    report.put("restart_clean_warm_secs", format!("{secs:.3}"));
    store.shutdown().unwrap();
    drop(store);
    if drop_caches() {
        let (secs, store) = timed_open(&dir);
        report.put("restart_clean_cold_secs", format!("{secs:.3}"));
        drop(store);
    }
    // Crash: the maintenance thread checkpointed within the last second.
    let store = Arc::new(MessageStore::open(config(&dir, FlushDiskType::AsyncFlush)).unwrap());
    fill_gib(&store, 1);
    std::thread::sleep(Duration::from_millis(1500));
    fill_gib(&store, 1);
    Arc::into_inner(store).unwrap().halt_without_cleanup();
    let (secs, store) = timed_open(&dir);
    let report_line = store.recovery_report().clone();
    report.put("restart_crash_warm_secs", format!("{secs:.3}"));
    report.put(
        "restart_crash_rescanned_bytes",
        report_line.log_end_offset - report_line.scan_from_offset,
    );
    store.halt_without_cleanup();
    std::fs::remove_file(dir.join("checkpoint")).unwrap();
    let (secs, store) = timed_open(&dir);
    report.put(
        "restart_crash_no_checkpoint_warm_secs",
        format!("{secs:.3}"),
    );
    report.put(
        "restart_crash_no_checkpoint_records",
        store.recovery_report().records_scanned,
    );
    store.halt_without_cleanup();
    std::fs::remove_file(dir.join("checkpoint")).unwrap();
    if drop_caches() {
        let (secs, store) = timed_open(&dir);
        report.put(
            "restart_crash_no_checkpoint_cold_secs",
            format!("{secs:.3}"),
        );
        store.shutdown().unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(
        args.get(1)
            .cloned()
            .unwrap_or_else(|| "/work/bench-store".into()),
    );
    let restart_gib: u64 = args
        .iter()
        .position(|a| a == "--restart-gib")
        .and_then(|i| args.get(i + 1))
        .map_or(10, |v| v.parse().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut report = Report(Vec::new());
    report.put(
        "cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    report.put("load_at_start", load_average());

    let phases =
        std::env::var("KARMAN_BENCH_PHASES").unwrap_or_else(|_| "async,sync,rolls,restart".into());
    let phases: Vec<&str> = phases.split(',').map(str::trim).collect();
    // A 1 GiB dd on this VM often lands in the host's write cache (up to 2.3 GB/s), so the
    // disk's bandwidth is a 4 GiB dd, and the ASYNC phase writes 4 GiB too: both see the
    // same cache. The 1 GiB figure is reported for reference.
    let dd_1gib = dd_bytes_per_sec(&dir, 1024);
    report.put("dd_1gib_mb_per_sec", format!("{:.0}", dd_1gib / 1e6));
    if phases.contains(&"async") {
        let dd = dd_bytes_per_sec(&dir, 4096);
        report.put("dd_4gib_mb_per_sec", format!("{:.0}", dd / 1e6));
        async_phase(&dir, dd, &mut report);
    }
    if phases.contains(&"sync") {
        sync_phase(&dir, &mut report);
    }
    if phases.contains(&"rolls") {
        sync_rolls_phase(&dir, &mut report);
    }
    if phases.contains(&"restart") && restart_gib > 0 {
        restart_phase(&dir, restart_gib, &mut report);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let json: Vec<String> = report
        .0
        .iter()
        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
        .collect();
    println!("{{{}}}", json.join(","));
}

fn async_phase(dir: &Path, dd: f64, report: &mut Report) {
    settle_disk();
    let async_dir = dir.join("async");
    let store =
        Arc::new(MessageStore::open(config(&async_dir, FlushDiskType::AsyncFlush)).unwrap());
    let total = (4u64 << 30) / BODY_BYTES as u64;
    let Appended {
        secs,
        record_bytes: bytes,
        ..
    } = append_concurrently(&store, 64, total, true);
    let flush_started = Instant::now();
    let store = Arc::into_inner(store).unwrap();
    store.checkpoint_now().unwrap();
    while store.flushed_physical_offset() < store.max_physical_offset() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let durable_secs = secs + flush_started.elapsed().as_secs_f64();
    report.put("async_messages", total);
    report.put("async_msgs_per_sec", format!("{:.0}", total as f64 / secs));
    report.put(
        "async_mb_per_sec",
        format!("{:.0}", bytes as f64 / secs / 1e6),
    );
    report.put(
        "async_percent_of_dd",
        format!("{:.0}", bytes as f64 / secs / dd * 100.0),
    );
    report.put(
        "async_durable_mb_per_sec",
        format!("{:.0}", bytes as f64 / durable_secs / 1e6),
    );
    report.put(
        "async_durable_percent_of_dd",
        format!("{:.0}", bytes as f64 / durable_secs / dd * 100.0),
    );

    store.wait_for_dispatch(Duration::from_secs(60));
    for copy in [false, true] {
        let (secs, bytes) = read_backlog(&store, copy);
        let key = if copy {
            "read_copy_gb_per_sec"
        } else {
            "read_slices_gb_per_sec"
        };
        report.put(key, format!("{:.2}", bytes as f64 / secs / 1e9));
        report.put("read_backlog_bytes", bytes);
    }
    store.shutdown().unwrap();
    drop(store);
    std::fs::remove_dir_all(&async_dir).unwrap();
}

fn sync_config(dir: &Path, warm: bool, segment_bytes: u64) -> StoreConfig {
    let mut config = config(dir, FlushDiskType::SyncFlush);
    config.warm_mapped_file_enable = Some(warm);
    config.mapped_file_size_commit_log_bytes = segment_bytes;
    config
}

fn wait_warmed(store: &MessageStore) {
    while !store.runtime_stats().next_segment_warmed {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// SYNC_FLUSH with warmed segments (the default) and without, beside the two baselines,
/// alternating: the disk's fsync latency drifts by several times within minutes on this
/// VM, so every round measures all four and the median ratios count.
fn sync_phase(dir: &Path, report: &mut Report) {
    const ROUNDS: usize = 5;
    settle_disk();
    let segment = 1 << 30;
    let warm =
        Arc::new(MessageStore::open(sync_config(&dir.join("sync-warm"), true, segment)).unwrap());
    let sparse = Arc::new(
        MessageStore::open(sync_config(&dir.join("sync-sparse"), false, segment)).unwrap(),
    );
    // The first segment is warmed before the first append and the second before the
    // rounds, so that no zero-writing runs during them (the rolls phase measures that).
    let started = Instant::now();
    wait_warmed(&warm);
    report.put(
        "sync_warm_first_segment_secs",
        format!("{:.1}", started.elapsed().as_secs_f64()),
    );
    append_concurrently(&warm, 1, 1, true);
    wait_warmed(&warm);
    let base_warm_file = baseline_file(dir, "fsync-warm.tmp", true);
    settle_disk();
    for (name, store) in [("warm", &warm), ("sparse", &sparse)] {
        let secs = append_concurrently(store, 1, 2000, true).secs;
        report.put(
            &format!("sync_{name}_1_appender_msgs_per_sec"),
            format!("{:.0}", 2000.0 / secs),
        );
    }
    let mut ratios: Vec<(&str, Vec<f64>)> = vec![
        ("warm_vs_warmed_baseline", Vec::new()),
        ("warm_vs_sparse_baseline", Vec::new()),
        ("sparse_vs_sparse_baseline", Vec::new()),
        ("warm_vs_ceiling", Vec::new()),
        ("warm_vs_bare_group_commit", Vec::new()),
        ("bare_group_commit_vs_warmed_baseline", Vec::new()),
    ];
    for round in 0..ROUNDS {
        report.put(&format!("sync_round{round}_load"), load_average());
        let base_sparse_file = baseline_file(dir, "fsync-sparse.tmp", false);
        let base_sparse = fsync_rate(&base_sparse_file, 1000, 1);
        drop(base_sparse_file);
        std::fs::remove_file(dir.join("fsync-sparse.tmp")).unwrap();
        let base_warm = fsync_rate(&base_warm_file, 1000, 1);
        let ceiling = fsync_rate(&base_warm_file, 300, 64);
        report.put(
            &format!("sync_round{round}_baseline_sparse_msgs_per_sec"),
            format!("{base_sparse:.0}"),
        );
        report.put(
            &format!("sync_round{round}_baseline_warmed_msgs_per_sec"),
            format!("{base_warm:.0}"),
        );
        report.put(
            &format!("sync_round{round}_ceiling_64_per_fsync_msgs_per_sec"),
            format!("{ceiling:.0}"),
        );
        let bare = bare_group_commit_rate(&base_warm_file, 100_000);
        report.put(
            &format!("sync_round{round}_bare_group_commit_64_msgs_per_sec"),
            format!("{bare:.0}"),
        );
        let mut rates = Vec::new();
        for (name, store) in [("warm", &warm), ("sparse", &sparse)] {
            let n = 100_000;
            let before = store.runtime_stats();
            let writer_cpu_before = threads_cpu_us("karman-writer");
            let appended = append_concurrently(store, 64, n, true);
            let writer_cpu_us = threads_cpu_us("karman-writer") - writer_cpu_before;
            let secs = appended.secs;
            let after = store.runtime_stats();
            let flushes = after.flush_count - before.flush_count;
            for (who, cpu_us) in [
                ("writer", writer_cpu_us),
                ("appenders", appended.appenders_cpu_us),
            ] {
                report.put(
                    &format!("sync_round{round}_{name}_{who}_cpu_us_per_fsync"),
                    cpu_us / flushes.max(1),
                );
            }
            let rate = n as f64 / secs;
            report.put(
                &format!("sync_round{round}_{name}_64_appenders_msgs_per_sec"),
                format!("{rate:.0}"),
            );
            report.put(
                &format!("sync_round{round}_{name}_messages_per_fsync"),
                format!("{:.1}", n as f64 / flushes as f64),
            );
            report.put(
                &format!("sync_round{round}_{name}_fsync_avg_us"),
                (after.flush_us - before.flush_us) / flushes.max(1),
            );
            rates.push(rate);
        }
        let round_ratios = [
            rates[0] / base_warm,
            rates[0] / base_sparse,
            rates[1] / base_sparse,
            rates[0] / ceiling,
            rates[0] / bare,
            bare / base_warm,
        ];
        for ((name, all), ratio) in ratios.iter_mut().zip(round_ratios) {
            report.put(&format!("sync_round{round}_{name}"), format!("{ratio:.2}"));
            all.push(ratio);
        }
    }
    for (name, all) in ratios {
        report.put(
            &format!("sync_median_{name}"),
            format!("{:.2}", median(all)),
        );
    }
    drop(base_warm_file);
    std::fs::remove_file(dir.join("fsync-warm.tmp")).unwrap();
    for (name, store) in [("warm", warm), ("sparse", sparse)] {
        Arc::into_inner(store).unwrap().shutdown().unwrap();
        std::fs::remove_dir_all(dir.join(format!("sync-{name}"))).unwrap();
    }
}

/// SYNC_FLUSH across several rolls (256 MiB segments), so that the warming of each next
/// segment runs beside the group commits as it does in a long-lived broker.
fn sync_rolls_phase(dir: &Path, report: &mut Report) {
    let n: u64 = 1_200_000;
    for warm in [true, false] {
        settle_disk();
        let name = if warm { "warm" } else { "sparse" };
        let store_dir = dir.join(format!("rolls-{name}"));
        let store = Arc::new(MessageStore::open(sync_config(&store_dir, warm, 256 << 20)).unwrap());
        report.put(&format!("rolls_{name}_load"), load_average());
        let Appended {
            secs,
            record_bytes: bytes,
            ..
        } = append_concurrently(&store, 64, n, true);
        let stats = store.runtime_stats();
        report.put(
            &format!("rolls_{name}_64_appenders_msgs_per_sec"),
            format!("{:.0}", n as f64 / secs),
        );
        report.put(&format!("rolls_{name}_bytes"), bytes);
        report.put(
            &format!("rolls_{name}_segments"),
            stats.commit_log_segment_count,
        );
        report.put(
            &format!("rolls_{name}_segments_warmed"),
            stats.segments_warmed,
        );
        report.put(&format!("rolls_{name}_cold_rolls"), stats.cold_rolls);
        report.put(
            &format!("rolls_{name}_messages_per_fsync"),
            format!("{:.1}", n as f64 / stats.flush_count as f64),
        );
        report.put(
            &format!("rolls_{name}_fsync_avg_us"),
            stats.flush_us / stats.flush_count.max(1),
        );
        Arc::into_inner(store).unwrap().shutdown().unwrap();
        std::fs::remove_dir_all(&store_dir).unwrap();
    }
    let file = baseline_file(dir, "fsync-warm.tmp", true);
    settle_disk();
    report.put(
        "rolls_baseline_warmed_msgs_per_sec",
        format!("{:.0}", fsync_rate(&file, 1000, 1)),
    );
    drop(file);
    std::fs::remove_file(dir.join("fsync-warm.tmp")).unwrap();
}
