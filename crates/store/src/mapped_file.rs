//! Memory maps: the only module of the crate with `unsafe`.
//!
//! Commit-log segments are mapped read-only and shared (`MAP_SHARED`); the writer thread
//! appends with `pwrite` through the same page cache, so a read slice sees every byte the
//! writer has published. The whole mapping is wrapped once in a [`Bytes`] whose owner is
//! the map itself ([`Bytes::from_owner`]); every read is a `slice` of it, a reference-count
//! increment with no allocation and no copy. A slice keeps the mapping alive after its
//! segment is deleted: deletion unlinks the file, the kernel keeps the pages until the
//! last slice is dropped.
//!
//! Consume-queue and index files are mapped writable ([`MmapMut`]); they are only ever
//! touched under their owner's lock and are never handed out as slices.

#![allow(unsafe_code)]

use std::fs::File;
use std::num::NonZeroU64;
use std::path::Path;

use bytes::Bytes;
use memmap2::{Advice, Mmap, MmapMut};

use crate::error::{Result, StoreError};

/// The page size the flush rules count in (RocketMQ's `OS_PAGE_SIZE`).
pub(crate) const PAGE_BYTES: usize = 4096;

/// Opens a store file for reading and writing, creating it when `create` (never truncating
/// it: every store file is sized by its owner); `op` names the step in the error.
pub(crate) fn open_rw(path: &Path, create: bool, op: &'static str) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io(op, path, e))
}

/// Maps a whole file read-only and returns it as one shared [`Bytes`].
pub(crate) fn map_shared_bytes(file: &File, path: &Path) -> Result<Bytes> {
    // SAFETY: a mapping is sound only if nobody truncates the file or changes mapped bytes
    // that Rust code is reading. (1) Files are never shrunk: segments are created at their
    // full size and only ever unlinked, which keeps the pages mapped; the `lock` file keeps
    // a second Karman process away. (2) Bytes past the published write position may change
    // (the writer `pwrite`s there and recovery zeroes torn tails before any reader exists),
    // but readers slice only below the published position, which is written once and never
    // again. An outside process editing the files breaks this, as with any mmap database.
    let map = unsafe { Mmap::map(file) }.map_err(|e| StoreError::io("mmap", path, e))?;
    Ok(Bytes::from_owner(map))
}

/// Hands bytes `[from, to)` of a segment mapped by [`map_shared_bytes`] back to the
/// kernel: this process's page-table entries for them, then their page-cache pages. Only
/// for flushed bytes: the kernel drops clean pages only. The bytes stay readable; the next
/// access faults them in from the file.
pub(crate) fn release_pages(
    file: &File,
    map: &Bytes,
    from: usize,
    to: usize,
    path: &Path,
) -> Result<()> {
    let (from, to) = (
        from.next_multiple_of(PAGE_BYTES),
        to / PAGE_BYTES * PAGE_BYTES,
    );
    if to <= from || to > map.len() {
        return Ok(());
    }
    let start = map.as_ptr().wrapping_add(from).cast_mut().cast();
    // SAFETY: `[start, start + to - from)` lies inside `map`, a shared read-only mapping of
    // `file` (page-aligned: the mapping starts on a page and both ends were rounded to
    // pages). On a shared file mapping MADV_DONTNEED only drops page-table entries; a later
    // read faults the same bytes back in from the page cache or the file. They lie below
    // the flushed offset, which is written once and never again, so every slice of the
    // mapping a reader holds keeps its contents.
    unsafe { rustix::mm::madvise(start, to - from, rustix::mm::Advice::LinuxDontNeed) }
        .map_err(|e| StoreError::io("madvise", path, e.into()))?;
    let offset = u64::try_from(from).unwrap_or(u64::MAX);
    let len = NonZeroU64::new(u64::try_from(to - from).unwrap_or(u64::MAX));
    rustix::fs::fadvise(file, offset, len, rustix::fs::Advice::DontNeed)
        .map_err(|e| StoreError::io("fadvise", path, e.into()))
}

/// Maps a whole file writable, for consume-queue and index files.
pub(crate) fn map_mut(file: &File, path: &Path) -> Result<MmapMut> {
    // SAFETY: the file is never shrunk while mapped (consume-queue and index files keep
    // their created size and are only unlinked), and every access goes through the owner's
    // lock, so no `&[u8]` to these bytes coexists with a write through the `&mut [u8]`.
    let map = unsafe { MmapMut::map_mut(file) }.map_err(|e| StoreError::io("mmap", path, e))?;
    // These files are sparse and touched a few bytes at a time (a 20-byte consume-queue
    // unit, an index slot at a hashed position). With the kernel's fault read-around, the
    // first touch reads ahead up to read_ahead_kb (8 MiB on some virtual disks) and zeroes
    // every hole page of it: a 1,024-queue topic such as BenchmarkTest then zeroed all
    // 6 GB of its consume-queue files up front, half of the broker's CPU and 6 GB of page
    // cache. Fault in only the page that is touched.
    map.advise(Advice::Random)
        .map_err(|e| StoreError::io("madvise", path, e))?;
    Ok(map)
}

/// Big-endian i32 at `at`, or `None` past the end.
pub(crate) fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    let end = at.checked_add(4)?;
    let bytes: [u8; 4] = buf.get(at..end)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

/// Big-endian i64 at `at`, or `None` past the end.
pub(crate) fn be_i64(buf: &[u8], at: usize) -> Option<i64> {
    let end = at.checked_add(8)?;
    let bytes: [u8; 8] = buf.get(at..end)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

/// Writes `src` at `at`; `false` when it does not fit.
pub(crate) fn put_at(buf: &mut [u8], at: usize, src: &[u8]) -> bool {
    let Some(end) = at.checked_add(src.len()) else {
        return false;
    };
    match buf.get_mut(at..end) {
        Some(dst) => {
            dst.copy_from_slice(src);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Resident KiB of the mapping that contains `address`, from /proc/self/smaps.
    fn resident_kib(address: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            let bounds = range.split_once('-').map(|(from, to)| {
                (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            });
            if let Some((Ok(from), Ok(to))) = bounds {
                inside = (from..to).contains(&address);
                continue;
            }
            if let Some(rss) = line.strip_prefix("Rss:").filter(|_| inside) {
                return rss.trim().trim_end_matches("kB").trim().parse().unwrap();
            }
        }
        panic!("no mapping at {address:#x}");
    }

    #[test]
    fn released_pages_leave_the_mapping_and_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let content: Vec<u8> = (0..64 * PAGE_BYTES).map(|i| (i % 251) as u8).collect();
        let mut file = File::create(&path).unwrap();
        file.write_all(&content).unwrap();
        file.sync_all().unwrap();
        let file = File::open(&path).unwrap();
        let map = map_shared_bytes(&file, &path).unwrap();
        let held = map.slice(PAGE_BYTES * 10..PAGE_BYTES * 11);
        assert_eq!(&map[..], &content[..]);
        let address = map.as_ptr() as usize;
        assert_eq!(resident_kib(address), 256);
        // Unaligned ends are rounded inwards: pages 1..=47 go, 0 and 48.. stay.
        release_pages(&file, &map, 100, PAGE_BYTES * 48 + 100, &path).unwrap();
        assert_eq!(resident_kib(address), 4 * (64 - 47));
        assert_eq!(&held[..], &content[PAGE_BYTES * 10..PAGE_BYTES * 11]);
        assert_eq!(&map[..], &content[..]);
    }

    #[test]
    fn slices_outlive_the_unlinked_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"hello mapped world").unwrap();
        let file = File::open(&path).unwrap();
        let whole = map_shared_bytes(&file, &path).unwrap();
        let slice = whole.slice(6..12);
        drop(whole);
        drop(file);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&slice[..], b"mapped");
    }

    #[test]
    fn big_endian_reads_stop_at_the_end() {
        let buf = [0, 0, 0, 7, 1];
        assert_eq!(be_i32(&buf, 0), Some(7));
        assert_eq!(be_i32(&buf, 2), None);
        assert_eq!(be_i64(&buf, 0), None);
        let mut out = [0u8; 4];
        assert!(put_at(&mut out, 2, &[1, 2]));
        assert!(!put_at(&mut out, 3, &[1, 2]));
    }
}
