//! The offsets and timestamps of a stored batch's records, for ListOffsets
//! by time: Kafka answers with a record's offset, not its batch's, for
//! compressed batches too.
//!
//! Runs on the log's shard with nothing awaited, for an admin request
//! rather than the data path: a compressed batch is decompressed into a
//! buffer of its own, within [`DECOMPRESSED_BATCH_BYTES_MAX`]. It only
//! reads what was validated when it was appended, and still never panics
//! or allocates on a count it read.

use crate::batch::{validate_one, BatchError, HEADER_BYTES, LOG_APPEND_TIME};
use crate::compression::decompress_into;
use crate::types::{Offset, Timestamp};
use crate::validate::{Reader, DECOMPRESSED_BATCH_BYTES_MAX};

/// Calls `f(offset, timestamp)` for each record of `batch` (a whole stored
/// batch) in order, until `f` answers `false`.
pub fn for_each_record_time(
    batch: &[u8],
    mut f: impl FnMut(Offset, Timestamp) -> bool,
) -> Result<(), BatchError> {
    let h = validate_one(batch)?;
    let batch = &batch[..h.size];
    if h.attributes & LOG_APPEND_TIME != 0 {
        for delta in 0..=h.last_offset_delta.max(0) as i64 {
            if !f(h.base_offset.saturating_add(delta), h.max_timestamp) {
                break;
            }
        }
        return Ok(());
    }
    let mut decompressed = Vec::new();
    let records = if h.compression() == 0 {
        &batch[HEADER_BYTES..]
    } else {
        decompress_into(
            h.compression(),
            &batch[HEADER_BYTES..],
            DECOMPRESSED_BATCH_BYTES_MAX,
            &mut decompressed,
        )
        .map_err(BatchError::Decompress)?;
        &decompressed[..]
    };
    let mut r = Reader { buf: records, at: 0 };
    for index in 0..h.records_count {
        let invalid = |why| BatchError::InvalidRecord { index, why };
        if r.at == records.len() {
            break;
        }
        let length = r.varint32().map_err(invalid)?;
        let length = usize::try_from(length).map_err(|_| invalid("negative record length"))?;
        let end = r.at.checked_add(length).filter(|&e| e <= records.len());
        let end = end.ok_or(invalid("record length runs past the batch"))?;
        let mut field = Reader { buf: &records[..end], at: r.at };
        field.byte().map_err(invalid)?; // attributes
        let timestamp_delta = field.varint64().map_err(invalid)?;
        let offset_delta = field.varint32().map_err(invalid)?;
        r.at = end;
        let offset = h.base_offset.saturating_add(offset_delta as i64);
        if !f(offset, h.base_timestamp.saturating_add(timestamp_delta)) {
            break;
        }
    }
    Ok(())
}

/// The first record at or past offset `from` whose timestamp is at or
/// after `timestamp`: its offset and timestamp.
pub fn first_at_or_after(
    batch: &[u8],
    timestamp: Timestamp,
    from: Offset,
) -> Result<Option<(Offset, Timestamp)>, BatchError> {
    let mut found = None;
    for_each_record_time(batch, |offset, ts| {
        if offset >= from && ts >= timestamp {
            found = Some((offset, ts));
        }
        found.is_none()
    })?;
    Ok(found)
}

/// The first record at or past offset `from` carrying the largest
/// timestamp among them: its offset and timestamp (ListOffsets
/// `MAX_TIMESTAMP`, KIP-734).
pub fn first_at_max(batch: &[u8], from: Offset) -> Result<Option<(Offset, Timestamp)>, BatchError> {
    let mut best: Option<(Offset, Timestamp)> = None;
    for_each_record_time(batch, |offset, ts| {
        if offset >= from && best.is_none_or(|(_, b)| ts > b) {
            best = Some((offset, ts));
        }
        true
    })?;
    Ok(best)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::batch::{build_timed, set_crc, stamp, with_compressed_records, KeyValue};

    const T: Timestamp = 1_700_000_000_000;

    fn batch_with(deltas: &[i64]) -> Vec<u8> {
        let recs: Vec<KeyValue<'_>> = deltas.iter().map(|_| (None, Some(&b"v"[..]))).collect();
        let mut b = build_timed(&recs, T, deltas);
        stamp(&mut b, 100, 0);
        b
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b[HEADER_BYTES..]).unwrap();
        with_compressed_records(b, 1, &e.finish().unwrap())
    }

    #[test]
    fn per_record_offsets_plain_and_compressed() {
        let plain = batch_with(&[0, 30, 10, 30, 20]);
        for b in [plain.clone(), gzip(&plain)] {
            assert_eq!(first_at_max(&b, 0).unwrap(), Some((101, T + 30)));
            assert_eq!(first_at_max(&b, 102).unwrap(), Some((103, T + 30)));
            assert_eq!(first_at_max(&b, 104).unwrap(), Some((104, T + 20)));
            assert_eq!(first_at_or_after(&b, T + 15, 0).unwrap(), Some((101, T + 30)));
            assert_eq!(first_at_or_after(&b, T + 15, 102).unwrap(), Some((103, T + 30)));
            assert_eq!(first_at_or_after(&b, T, 0).unwrap(), Some((100, T)));
            assert_eq!(first_at_or_after(&b, T + 31, 0).unwrap(), None);
        }
    }

    #[test]
    fn log_append_time_batches_answer_their_first_record() {
        let mut b = batch_with(&[0, 5, 3]);
        crate::batch::set_timestamps(&mut b, true, T + 99);
        assert_eq!(first_at_max(&b, 0).unwrap(), Some((100, T + 99)));
        assert_eq!(first_at_or_after(&b, T + 50, 0).unwrap(), Some((100, T + 99)));
    }

    #[test]
    fn damaged_records_are_an_error_not_a_panic() {
        let mut b = batch_with(&[0, 1]);
        let at = HEADER_BYTES;
        b[at] = 0x7f; // the first record's length runs past the batch
        set_crc(&mut b);
        assert!(first_at_max(&b, 0).is_err());
    }
}
