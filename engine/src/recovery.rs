//! Scanning a segment file batch by batch: the heart of recovery after an
//! unclean shutdown, and of index rebuilding.
//!
//! Runs on the partition's shard when the log opens. It reads the file in
//! large sequential reads and checks every batch (length, magic, CRC-32C,
//! contiguous offsets); the first batch that fails ends the valid data. It
//! never writes: the caller decides whether to truncate.

use std::io;

use crate::batch::{validate_one, BatchHeader, HEADER_BYTES};
use crate::disk::DiskFile;
use crate::limits::RECOVERY_READ_BYTES;
use crate::types::Offset;

/// What a scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Position after the last valid batch.
    pub valid_end: u64,
    /// Last valid offset + 1 (the expected offset if no batch was valid).
    pub next_offset: Offset,
    /// Valid batches seen.
    pub batches: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<&'static str>,
}

/// Scans `file` from `from` (a batch boundary) up to `file_size`, expecting
/// the first batch to start at `expected_offset` (in the segment starting at
/// `segment_base`); calls `on_batch` for every
/// valid batch with its position.
pub async fn scan<F: DiskFile>(
    file: &F,
    file_size: u64,
    from: u64,
    expected_offset: Offset,
    segment_base: Offset,
    mut on_batch: impl FnMut(&BatchHeader, u64),
) -> io::Result<ScanOutcome> {
    let mut out =
        ScanOutcome { valid_end: from, next_offset: expected_offset, batches: 0, stopped: None };
    let mut buf: Vec<u8> = Vec::new();
    // File position of buf[0].
    let mut buf_pos = from;
    loop {
        let pos = out.valid_end;
        if pos >= file_size {
            return Ok(out);
        }
        let at = (pos - buf_pos) as usize;
        let available = buf.len() - at;
        // How many bytes the next batch needs: its header first, then all of it.
        let needed = match BatchHeader::parse(&buf[at..]) {
            None => HEADER_BYTES,
            Some(h) => h.size.max(HEADER_BYTES),
        };
        if needed as u64 > file_size - pos {
            out.stopped = Some(if file_size - pos < HEADER_BYTES as u64 {
                "partial batch header at the end"
            } else {
                "batch runs past the end of the file"
            });
            return Ok(out);
        }
        if available < needed {
            // Refill from `pos`, reading at least a large chunk.
            let len = needed.max(RECOVERY_READ_BYTES).min((file_size - pos) as usize);
            let data = file.read_at(pos, len).await?;
            let data = data.as_ref();
            if data.len() < needed {
                out.stopped = Some("file shorter than its size");
                return Ok(out);
            }
            buf.clear();
            buf.extend_from_slice(data);
            buf_pos = pos;
            continue;
        }
        let header = match validate_one(&buf[at..at + needed]) {
            Ok(h) => h,
            Err(
                crate::batch::BatchError::Corrupt(why) | crate::batch::BatchError::Invalid(why),
            ) => {
                out.stopped = Some(why);
                return Ok(out);
            }
            Err(_) => {
                out.stopped = Some("invalid batch");
                return Ok(out);
            }
        };
        // Offsets only grow: compaction removes batches, so gaps are normal.
        if header.base_offset < out.next_offset {
            out.stopped = Some("batch offset goes back");
            return Ok(out);
        }
        // Compaction may leave a batch with no records (it keeps each
        // segment's last batch, so offsets stay contiguous across segments).
        if header.records_count < 0 || header.last_offset_delta < 0 {
            out.stopped = Some("batch with a negative record count");
            return Ok(out);
        }
        // Every offset of a segment is within i32::MAX of its base (appends
        // roll before that), which keeps index entries in range.
        let last = header.base_offset.checked_add(header.last_offset_delta as i64);
        if last.is_none_or(|l| l - segment_base > i32::MAX as i64) {
            out.stopped = Some("batch offsets too far from the segment's base offset");
            return Ok(out);
        }
        on_batch(&header, pos);
        out.batches += 1;
        out.valid_end = pos + header.size as u64;
        out.next_offset = header.last_offset() + 1;
    }
}
