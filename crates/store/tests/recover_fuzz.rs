//! Arbitrary damage to the store's files never panics the store, and a store that opens
//! never serves a record that does not verify (the `store_recover` property of STYLE.md).
//! The template store crashed before its first checkpoint, so recovery scans (and CRC-checks)
//! every record; damage below a checkpoint is row 10 of the recovery table instead.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use karman_protocol::message::MessageView;
use karman_store::{AcceptAll, CommitLogOffset, MessageStore, QueueOffset};
use proptest::prelude::*;

/// A crashed store with two segments, built once and copied for each case.
fn template() -> &'static (tempfile::TempDir, Vec<i64>) {
    static TEMPLATE: OnceLock<(tempfile::TempDir, Vec<i64>)> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(small_config(dir.path())).unwrap();
        let rt = runtime();
        let offsets = (0..90)
            .map(|i| {
                let r = rt.block_on(store.append(message(
                    "Z",
                    (i % 2) as i32,
                    body(i, 900),
                    &[("KEYS", "k")],
                )));
                r.physical_offset.0
            })
            .collect();
        settle(&store);
        store.halt_without_cleanup();
        (dir, offsets)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if !path.ends_with("lock") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[derive(Debug, Clone)]
enum Damage {
    Bytes {
        file: usize,
        at: u64,
        bytes: Vec<u8>,
    },
    Truncate {
        file: usize,
        len: u64,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<usize>(), 0u64..140_000, proptest::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(file, at, bytes)| Damage::Bytes { file, at, bytes }),
        1 => (any::<usize>(), 0u64..140_000).prop_map(|(file, len)| Damage::Truncate { file, len }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn damaged_files_never_panic_nor_serve_bad_records(damages in proptest::collection::vec(damage(), 1..6)) {
        let (template_dir, offsets) = template();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(template_dir.path(), dir.path());
        let targets = files(dir.path());
        for d in &damages {
            match d {
                Damage::Bytes { file, at, bytes } => {
                    let path = &targets[file % targets.len()];
                    let len = std::fs::metadata(path).unwrap().len();
                    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                    f.write_all_at(bytes, at % len.max(1)).unwrap();
                }
                Damage::Truncate { file, len } => {
                    let path = &targets[file % targets.len()];
                    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                    f.set_len(*len).unwrap();
                }
            }
        }
        let Ok(store) = MessageStore::open(small_config(dir.path())) else {
            return Ok(()); // refusing to open damaged data is a correct answer
        };
        for offset in offsets {
            if let Some(bytes) = store.read_message(CommitLogOffset(*offset)) {
                let view = MessageView::parse(&bytes).unwrap();
                prop_assert!(view.verify_body_crc().is_ok());
                prop_assert_eq!(view.record_len(), bytes.len());
            }
        }
        for queue_id in 0..2 {
            let mut offset = store.min_offset_in_queue("Z", queue_id).0;
            let max = store.max_offset_in_queue("Z", queue_id).0;
            while offset < max {
                let pulled = store.get_message("Z", queue_id, QueueOffset(offset), 32, 0, &AcceptAll);
                for bytes in &pulled.messages {
                    let view = MessageView::parse(bytes).unwrap();
                    prop_assert!(view.verify_body_crc().is_ok());
                    prop_assert_eq!(view.record_len(), bytes.len());
                }
                prop_assert!(pulled.next_begin_offset.0 > offset || pulled.messages.is_empty());
                if pulled.next_begin_offset.0 <= offset {
                    break;
                }
                offset = pulled.next_begin_offset.0;
            }
        }
        let _ = store.query_message("Z", "k", 64, 0, i64::MAX);
        let r = runtime().block_on(store.append(message("Z", 0, "after damage", &[])));
        prop_assert!(r.status.is_ok(), "{}", r.status);
    }
}
