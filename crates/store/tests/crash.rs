//! The SIGKILL crash test of issue 3.
//!
//! A child process (this test binary, re-executed on `crash_child_entry`) opens a
//! SYNC_FLUSH store, appends 1 KiB messages from 16 concurrent tasks and prints one
//! `ACK seq physical queue_id queue_offset` line per acknowledged append. The parent kills
//! it with SIGKILL at seeded random moments, 20 times. After a kill the parent (on even
//! rounds; odd rounds leave the crash recovery to the next child) reopens the store and
//! checks that every message acknowledged so far reads back byte-identical, that no
//! record a pull returns is partial or corrupt, and that every consume-queue unit points
//! at the record that names it.
//!
//! SIGKILL keeps the page cache, so this proves the gap between write and ack; the
//! fsync-ordering cases (lost unsynced pages, torn last write) are the recovery row tests.
//! The seed is printed; `KARMAN_SEED=<n>` replays it.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use karman_protocol::message::MessageView;
use karman_store::{AcceptAll, MessageStore, QueueOffset};

const ROUNDS: u64 = 20;
const TASKS: u64 = 16;
const QUEUES: u64 = 4;
const BODY_BYTES: usize = 1024;
const TOPIC: &str = "Crash";

#[test]
fn crash_child_entry() {
    let Ok(dir) = std::env::var("KARMAN_CRASH_CHILD_DIR") else {
        return; // Not the child: nothing to do in a normal run.
    };
    let base: u64 = std::env::var("KARMAN_CRASH_CHILD_BASE")
        .unwrap()
        .parse()
        .unwrap();
    let store = Arc::new(MessageStore::open(sync_config(Path::new(&dir))).unwrap());
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    writeln!(out.lock().unwrap(), "READY").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (store, out) = (store.clone(), out.clone());
                tokio::spawn(async move {
                    for k in 0.. {
                        let seq = base + task * 10_000_000 + k;
                        let queue_id = (seq % QUEUES) as i32;
                        let key = seq.to_string();
                        let r = store
                            .append(message(
                                TOPIC,
                                queue_id,
                                body(seq, BODY_BYTES),
                                &[("KEYS", &key)],
                            ))
                            .await;
                        assert!(r.status.is_ok(), "{:?}", r.status);
                        let line = format!(
                            "ACK {seq} {} {queue_id} {}\n",
                            r.physical_offset.0, r.queue_offset.0
                        );
                        let mut out = out.lock().unwrap();
                        out.write_all(line.as_bytes()).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[derive(Debug, Clone, Copy)]
struct Ack {
    physical: i64,
    queue_id: i32,
    queue_offset: i64,
}

/// Runs one child until `kill_after`, returns the acks it printed (whole lines only).
fn run_child(dir: &Path, base: u64, kill_after: Duration) -> Vec<(u64, Ack)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KARMAN_CRASH_CHILD_DIR", dir)
        .env("KARMAN_CRASH_CHILD_BASE", base.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut acks = Vec::new();
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            // A line cut by the kill has no newline and is not an ack.
            if line.ends_with(b"\n") {
                let text = String::from_utf8_lossy(&line);
                let fields: Vec<&str> = text.split_whitespace().collect();
                match fields.as_slice() {
                    // libtest prints "test crash_child_entry ... " before it.
                    [.., "READY"] => {
                        let _ = ready_tx.send(());
                    }
                    ["ACK", seq, physical, queue_id, queue_offset] => acks.push((
                        seq.parse().unwrap(),
                        Ack {
                            physical: physical.parse().unwrap(),
                            queue_id: queue_id.parse().unwrap(),
                            queue_offset: queue_offset.parse().unwrap(),
                        },
                    )),
                    _ => {}
                }
            }
            line.clear();
        }
        acks
    });
    if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        panic!(
            "child never became ready: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::thread::sleep(kill_after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// Reopens (recovering the crash) and checks every acknowledged message and every unit.
fn verify(dir: &Path, acked: &HashMap<u64, Ack>) {
    let store = MessageStore::open(sync_config(dir)).unwrap();
    for (seq, ack) in acked {
        let bytes = store
            .read_message(karman_store::CommitLogOffset(ack.physical))
            .unwrap_or_else(|| panic!("acknowledged message {seq} at {} is gone", ack.physical));
        let view = MessageView::parse(&bytes).unwrap();
        view.verify_body_crc().unwrap();
        assert_eq!(
            view.body,
            &body(*seq, BODY_BYTES)[..],
            "message {seq} differs"
        );
        assert_eq!(
            (view.queue_id, view.queue_offset),
            (ack.queue_id, ack.queue_offset)
        );
        let unit =
            store.commit_log_offset_in_queue(TOPIC, ack.queue_id, QueueOffset(ack.queue_offset));
        assert_eq!(
            unit.map(|u| u.0),
            Some(ack.physical),
            "consume queue disagrees for {seq}"
        );
    }
    for queue_id in 0..QUEUES as i32 {
        let max = store.max_offset_in_queue(TOPIC, queue_id).0;
        let mut offset = store.min_offset_in_queue(TOPIC, queue_id).0;
        while offset < max {
            let pulled = store.get_message(TOPIC, queue_id, QueueOffset(offset), 32, 0, &AcceptAll);
            assert!(
                !pulled.messages.is_empty(),
                "queue {queue_id} has a hole at {offset}"
            );
            for (bytes, at) in pulled.messages.iter().zip(&pulled.message_queue_offsets) {
                let view = MessageView::parse(bytes).expect("a pull returned a partial record");
                view.verify_body_crc()
                    .expect("a pull returned a corrupt record");
                assert_eq!(bytes.len(), view.record_len());
                assert_eq!(
                    (view.topic, view.queue_id, view.queue_offset),
                    (TOPIC, queue_id, at.0)
                );
            }
            offset = pulled.next_begin_offset.0;
        }
    }
    store.shutdown().unwrap();
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    let seed = seed("crash test");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: HashMap<u64, Ack> = HashMap::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let kill_after = Duration::from_millis(rng.between(5, 250));
        let acks = run_child(dir.path(), round * 1_000_000_000, kill_after);
        eprintln!(
            "round {round}: killed after {kill_after:?}, {} acks",
            acks.len()
        );
        acked.extend(acks);
        if round % 2 == 0 || round == ROUNDS - 1 {
            verify(dir.path(), &acked);
        }
    }
    eprintln!(
        "{} acknowledged messages verified in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(
        acked.len() > 100,
        "too few acks to mean anything: {}",
        acked.len()
    );
}
