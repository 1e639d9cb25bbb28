//! Replays every fuzz seed and every saved crash input through the same harness the fuzz
//! targets run, so stable CI covers them. Crash inputs are kept in
//! `fuzz/regressions/<target>/`, named after what they broke.

use std::path::PathBuf;

use karman_protocol::fuzz_harness;

fn replay(target: &str, harness: fn(&[u8])) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for dir in ["seeds", "regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            harness(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no seeds found for fuzz target {target}");
}

#[test]
fn frame() {
    replay("frame", fuzz_harness::frame);
}

#[test]
fn header_json() {
    replay("header_json", fuzz_harness::header_json);
}

#[test]
fn header_binary() {
    replay("header_binary", fuzz_harness::header_binary);
}

#[test]
fn message() {
    replay("message", fuzz_harness::message);
}

#[test]
fn batch() {
    replay("batch", fuzz_harness::batch);
}

#[test]
fn properties() {
    replay("properties", fuzz_harness::properties);
}

#[test]
fn body_json() {
    replay("body_json", fuzz_harness::body_json);
}
