//! One segment: a `<base_offset:020>.log` file of record batches with its
//! offset and time indexes (formats in [`crate::index`]) and its
//! aborted-transactions index (format in [`crate::txn`]).
//!
//! Owned by the partition's shard, inside a [`crate::PartitionLog`]. It holds
//! the segment's in-memory bookkeeping; it does no I/O of its own except
//! writing its index files when it is closed.
//!
//! The `.log` file is the concatenation of whole batches (format in
//! [`crate::batch`]), each with `baseOffset` equal to the previous batch's
//! last offset + 1, the first one's equal to the file name's offset. While
//! the segment is active the file can be longer than its data: direct
//! writes pad the last block with zeros. Closing truncates it to the
//! logical size.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::batch::BatchHeader;
use crate::disk::{write_file_atomic, Disk, DiskFile};
use crate::index::{OffsetIndex, TimeIndex};
use crate::txn::{AbortedTxn, TXN_INDEX_SUFFIX};
use crate::types::{Offset, Timestamp, NO_TIMESTAMP};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// `<dir>/<base_offset:020>.<suffix>`, Kafka's naming.
pub fn segment_path(dir: &Path, base_offset: Offset, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// The base offset named by a `.log` file name, if it is one.
pub fn parse_log_name(name: &str) -> Option<Offset> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub struct Segment<D: Disk> {
    pub base_offset: Offset,
    pub file: Rc<D::File>,
    /// Bytes of whole batches: the logical size.
    pub size: u64,
    /// File size up to which free disk space was checked (see
    /// [`crate::disk::DiskFile::reserve`]); equal to `size` once closed.
    pub reserved: u64,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    bytes_since_index_entry: u64,
    /// Last offset + 1; `base_offset` when empty.
    pub next_offset: Offset,
    /// Largest `maxTimestamp` of the segment's batches.
    pub max_timestamp: Timestamp,
    /// Base offset of the batch holding `max_timestamp`.
    pub max_timestamp_offset: Offset,
    /// When the segment was created or opened, for `segment.ms`.
    pub created_ms: Timestamp,
    /// The aborted transactions whose markers the segment holds.
    pub aborted: TxnEntries,
}

/// Where a segment's aborted-transactions entries are: in memory while it
/// can still change (the active segment, a rolled one not yet closed), in
/// its `.txnindex` file afterwards, so that memory does not grow with the
/// number of aborts in the log (an entry takes 34 bytes for a marker of
/// about 80). A file is written only when there are entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnEntries {
    Memory(Vec<AbortedTxn>),
    /// This many entries, in the segment's `.txnindex`.
    Stored(usize),
}

impl TxnEntries {
    pub fn len(&self) -> usize {
        match self {
            TxnEntries::Memory(v) => v.len(),
            TxnEntries::Stored(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Notes an aborted transaction whose marker this (active) segment
    /// just took, with the first unstable offset after it.
    pub fn push(&mut self, done: crate::txn::CompletedTxn, last_stable_offset: Offset) {
        let entry = AbortedTxn {
            producer_id: done.producer_id,
            first_offset: done.first_offset,
            last_offset: done.last_offset,
            last_stable_offset,
        };
        match self {
            TxnEntries::Memory(v) => v.push(entry),
            // Appends go to the active segment, whose entries are in memory.
            TxnEntries::Stored(_) => debug_assert!(false, "marker placed in a closed segment"),
        }
    }
}

impl<D: Disk> Segment<D> {
    pub fn new(base_offset: Offset, file: Rc<D::File>, created_ms: Timestamp) -> Self {
        Segment {
            base_offset,
            file,
            size: 0,
            reserved: 0,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            max_timestamp_offset: base_offset,
            created_ms,
            aborted: TxnEntries::Memory(Vec::new()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Records a batch appended (or found by recovery) at `position`:
    /// bookkeeping and index entries. Batches arrive in order.
    pub fn note_batch(&mut self, header: &BatchHeader, position: u64, index_interval_bytes: u64) {
        debug_assert!(
            header.base_offset >= self.next_offset,
            "offsets grow (gaps after compaction)"
        );
        debug_assert_eq!(position, self.size, "batches are contiguous");
        let relative = (header.base_offset - self.base_offset) as u32;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = header.base_offset;
        }
        if self.bytes_since_index_entry >= index_interval_bytes && position > 0 {
            self.index.push(relative, position as u32);
            self.time_index.maybe_push(self.max_timestamp, relative);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.size as u64;
        self.size = position + header.size as u64;
        self.next_offset = header.last_offset() + 1;
    }

    /// Continues bookkeeping after indexes loaded from files: the batches
    /// from the last index entry on are noted again by a scan.
    pub fn reset_to_last_index_entry(&mut self) -> (u64, Offset) {
        match self.index.last() {
            Some(e) => {
                self.size = e.position as u64;
                self.next_offset = self.base_offset + e.relative_offset as i64;
                // The entry's batch is noted again: do not add its entry twice.
                self.index.truncate_to_position(e.position);
                self.time_index.truncate_to_relative_offset(e.relative_offset);
                self.bytes_since_index_entry = u64::MAX / 2;
                (e.position as u64, self.next_offset)
            }
            None => {
                self.size = 0;
                self.next_offset = self.base_offset;
                self.bytes_since_index_entry = 0;
                self.index = OffsetIndex::default();
                self.time_index = TimeIndex::default();
                (0, self.base_offset)
            }
        }
    }

    /// Drops index state for a full rebuild.
    pub fn clear_indexes(&mut self) {
        self.index = OffsetIndex::default();
        self.time_index = TimeIndex::default();
        self.size = 0;
        self.next_offset = self.base_offset;
        self.bytes_since_index_entry = 0;
        self.max_timestamp = NO_TIMESTAMP;
        self.max_timestamp_offset = self.base_offset;
    }

    /// Prepares closing the segment on disk: a final time index entry, and
    /// the file and index contents to write. The I/O runs in [`ClosePlan::run`]
    /// without holding the log's state.
    pub fn close_plan(&mut self) -> ClosePlan<D> {
        if self.max_timestamp != NO_TIMESTAMP {
            let relative = (self.max_timestamp_offset - self.base_offset) as u32;
            self.time_index.maybe_push(self.max_timestamp, relative);
        }
        self.reserved = self.size;
        ClosePlan {
            base_offset: self.base_offset,
            file: self.file.clone(),
            size: self.size,
            index: self.index.encode(),
            time_index: self.time_index.encode(),
            txn_index: match &self.aborted {
                TxnEntries::Memory(v) => Some(AbortedTxn::encode_all(v)),
                TxnEntries::Stored(_) => None,
            },
        }
    }
}

/// The I/O of closing a segment: truncate the file to its logical size,
/// fdatasync it, write its index files. Idempotent. Not `durable`: no
/// fdatasync or directory sync; the caller syncs the file system after.
pub struct ClosePlan<D: Disk> {
    base_offset: Offset,
    file: Rc<D::File>,
    size: u64,
    index: Vec<u8>,
    time_index: Vec<u8>,
    /// The `.txnindex` contents, `None` when the file already holds them;
    /// empty: no file.
    txn_index: Option<Vec<u8>>,
}

impl<D: Disk> ClosePlan<D> {
    pub async fn run(self, disk: &D, dir: &Path, durable: bool) -> std::io::Result<()> {
        self.file.truncate(self.size).await?;
        let index = segment_path(dir, self.base_offset, INDEX_SUFFIX);
        let time_index = segment_path(dir, self.base_offset, TIME_INDEX_SUFFIX);
        if durable {
            self.file.fdatasync().await?;
            write_file_atomic(disk, &index, &self.index).await?;
            write_file_atomic(disk, &time_index, &self.time_index).await?;
        } else {
            disk.replace_file(&index, &self.index).await?;
            disk.replace_file(&time_index, &self.time_index).await?;
        }
        // Durably even at a clean stop (it is rare): the producer snapshot
        // written beside it is trusted without the clean marker, and the
        // entries below it are only in this file.
        let Some(txn_index) = self.txn_index else { return Ok(()) };
        write_txn_index(disk, dir, self.base_offset, &txn_index, durable || !txn_index.is_empty())
            .await
    }

    /// The entries this plan writes to the `.txnindex`, if it writes them.
    pub fn txn_entries(&self) -> Option<usize> {
        self.txn_index.as_ref().map(|b| b.len() / crate::txn::TXN_ENTRY_BYTES)
    }

    pub fn base_offset(&self) -> Offset {
        self.base_offset
    }
}

/// Writes a segment's `.txnindex` (or removes it when `bytes` is empty).
pub async fn write_txn_index<D: Disk>(
    disk: &D,
    dir: &Path,
    base_offset: Offset,
    bytes: &[u8],
    durable: bool,
) -> std::io::Result<()> {
    let path = segment_path(dir, base_offset, TXN_INDEX_SUFFIX);
    if bytes.is_empty() {
        if disk.exists(&path).await? {
            disk.remove_file(&path).await?;
        }
        Ok(())
    } else if durable {
        write_file_atomic(disk, &path, bytes).await
    } else {
        disk.replace_file(&path, bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = segment_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(p, Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_name("00000000000000000042.index"), None);
        assert_eq!(parse_log_name("42.log"), None);
    }
}
