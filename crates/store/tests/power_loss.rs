//! Power loss, simulated on the files: after a run stops dead, every byte that no fsync
//! (or msync) covered may be lost, kept, or torn. Seeded; `KARMAN_SEED=<n>` replays.
//!
//! Model, per 4 KiB page past what was durable:
//! - commit log past the flushed offset: kept, zeroed, or filled with garbage;
//! - consume-queue units for records past the checkpoint's dispatched offset: kept or
//!   zeroed (the queue files are msynced only by checkpoints).
//!
//! Every append answered PUT_OK under SYNC_FLUSH must survive, whole and in its queue;
//! nothing torn may be served; consume queues must agree with the log.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use common::*;
use karman_protocol::message::MessageView;
use karman_store::{AcceptAll, Checkpoint, CommitLogOffset, MessageStore, QueueOffset};

const PAGE: u64 = 4096;

/// Applies the model to every file under `dir/commitlog` past `flushed`.
fn lose_unsynced_log_pages(dir: &Path, flushed: u64, segment: u64, rng: &mut Rng) {
    for entry in std::fs::read_dir(dir.join("commitlog")).unwrap() {
        let path = entry.unwrap().path();
        let Ok(start) = path.file_name().unwrap().to_str().unwrap().parse::<u64>() else {
            // A `.warming` segment was never part of the log: whatever power loss left in
            // it, open must delete it unread.
            let garbage: Vec<u8> = (0..2 * PAGE).map(|_| rng.next() as u8).collect();
            std::fs::write(&path, garbage).unwrap();
            continue;
        };
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let from = flushed.saturating_sub(start).min(segment);
        let mut page = from / PAGE * PAGE;
        while page < segment {
            let lo = page.max(from);
            let hi = (page + PAGE).min(segment);
            match rng.next() % 3 {
                0 => {}
                1 => file
                    .write_all_at(&vec![0u8; (hi - lo) as usize], lo)
                    .unwrap(),
                _ => {
                    let garbage: Vec<u8> = (lo..hi).map(|_| rng.next() as u8).collect();
                    file.write_all_at(&garbage, lo).unwrap();
                }
            }
            page += PAGE;
            if page > from + 16 * PAGE && rng.next().is_multiple_of(4) {
                break; // the rest of the segment was never written
            }
        }
    }
}

/// Reverts random pages of consume-queue files to their last msynced state: the units
/// for records at or past `dispatched` (written after the last checkpoint) vanish.
fn lose_unsynced_queue_pages(dir: &Path, dispatched: i64, rng: &mut Rng) {
    let root = dir.join("consumequeue");
    for topic in std::fs::read_dir(&root).unwrap() {
        for queue in std::fs::read_dir(topic.unwrap().path()).unwrap() {
            for file in std::fs::read_dir(queue.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let mut bytes = std::fs::read(&path).unwrap();
                for page in bytes.chunks_mut(PAGE as usize) {
                    if rng.next().is_multiple_of(2) {
                        continue;
                    }
                    for unit in page.chunks_mut(20).filter(|u| u.len() == 20) {
                        let unit_size = i32::from_be_bytes(unit[8..12].try_into().unwrap());
                        if unit_size > 0
                            && i64::from_be_bytes(unit[..8].try_into().unwrap()) >= dispatched
                        {
                            unit.fill(0);
                        }
                    }
                }
                std::fs::write(&path, bytes).unwrap();
            }
        }
    }
}

#[test]
fn acknowledged_sync_appends_survive_simulated_power_loss() {
    let seed = seed("power-loss test");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut acked: HashMap<u64, (i64, i32, i64)> = HashMap::new();
    for round in 0..8u64 {
        let store = Arc::new(MessageStore::open(sync_config(dir.path())).unwrap());
        verify(&store, &acked);
        let acks = rt.block_on(async {
            let tasks: Vec<_> = (0..8u64)
                .map(|task| {
                    let store = store.clone();
                    let wait_every = 1 + rng.next() % 3;
                    tokio::spawn(async move {
                        let mut acks = Vec::new();
                        for k in 0..40 {
                            let seq = round * 1_000_000 + task * 1000 + k;
                            let mut m = message("P", (seq % 3) as i32, body(seq, 700), &[]);
                            m.wait_store_msg_ok = k % wait_every == 0;
                            let r = store.append(m).await;
                            assert!(r.status.is_ok(), "{}", r.status);
                            if k % wait_every == 0 {
                                acks.push((
                                    seq,
                                    (r.physical_offset.0, (seq % 3) as i32, r.queue_offset.0),
                                ));
                            }
                        }
                        acks
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        });
        acked.extend(acks);
        let flushed = store.flushed_physical_offset() as u64;
        Arc::into_inner(store).unwrap().halt_without_cleanup();
        let checkpoint =
            Checkpoint::decode(&std::fs::read(dir.path().join("checkpoint")).unwrap()).unwrap();
        lose_unsynced_log_pages(dir.path(), flushed, 64 * 1024, &mut rng);
        lose_unsynced_queue_pages(dir.path(), checkpoint.dispatched_phy_offset, &mut rng);
    }
    let store = MessageStore::open(sync_config(dir.path())).unwrap();
    verify(&store, &acked);
    eprintln!(
        "{} acknowledged messages survived 8 simulated power losses",
        acked.len()
    );
}

fn verify(store: &MessageStore, acked: &HashMap<u64, (i64, i32, i64)>) {
    for (seq, (physical, queue_id, queue_offset)) in acked {
        let bytes = store
            .read_message(CommitLogOffset(*physical))
            .unwrap_or_else(|| panic!("ack {seq} lost"));
        let view = MessageView::parse(&bytes).unwrap();
        view.verify_body_crc().unwrap();
        assert_eq!(view.body, &body(*seq, 700)[..]);
        assert_eq!(
            store.commit_log_offset_in_queue("P", *queue_id, QueueOffset(*queue_offset)),
            Some(CommitLogOffset(*physical))
        );
    }
    for queue_id in 0..3 {
        let max = store.max_offset_in_queue("P", queue_id).0;
        let mut offset = store.min_offset_in_queue("P", queue_id).0;
        while offset < max {
            let pulled = store.get_message("P", queue_id, QueueOffset(offset), 32, 0, &AcceptAll);
            assert!(
                !pulled.messages.is_empty(),
                "hole in queue {queue_id} at {offset}"
            );
            for (bytes, at) in pulled.messages.iter().zip(&pulled.message_queue_offsets) {
                let view = MessageView::parse(bytes).unwrap();
                view.verify_body_crc().unwrap();
                assert_eq!((view.queue_id, view.queue_offset), (queue_id, at.0));
            }
            offset = pulled.next_begin_offset.0;
        }
    }
}
