//! The sparse indexes of one segment, kept in memory and written whole when
//! the segment is closed (they are rebuilt by a scan when missing or wrong,
//! so they never need their own fdatasync on the append path).
//!
//! **Offset index** (`<base>.index`): a sequence of 8-byte entries,
//! big-endian `u32` relative offset then `u32` position. The relative offset
//! is a batch's `baseOffset` minus the segment's base offset, the position is
//! where that batch starts in the `.log` file. Both strictly increase. An
//! entry is added for a batch when at least `index.interval.bytes` of batches
//! were appended since the previous entry, so every entry is a batch boundary.
//!
//! **Time index** (`<base>.timeindex`): 12-byte entries, big-endian `i64`
//! timestamp then `u32` relative offset: the largest `maxTimestamp` of the
//! segment's batches up to and including the batch at that relative offset.
//! Timestamps strictly increase. Entries are added at the same points as the
//! offset index when the largest timestamp grew, plus one final entry when the
//! segment is closed, so the last entry holds the segment's largest timestamp.

use crate::types::Timestamp;

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: Timestamp,
    pub relative_offset: u32,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(last) = self.entries.last() {
            assert!(
                relative_offset > last.relative_offset && position > last.position,
                "index must grow"
            );
        }
        self.entries.push(OffsetEntry { relative_offset, position });
    }

    /// The last entry at or before `relative_offset`, if any.
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let i = self.entries.partition_point(|e| e.relative_offset <= relative_offset);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Positions of batch starts in `(after, up_to]`, largest first: the
    /// boundaries a read can stop at without cutting a batch.
    pub fn last_position_in(&self, after: u32, up_to: u32) -> Option<u32> {
        let i = self.entries.partition_point(|e| e.position <= up_to);
        i.checked_sub(1).map(|i| self.entries[i].position).filter(|&p| p > after)
    }

    /// The first entry at or after `position`, if any.
    pub fn first_at_or_after(&self, position: u32) -> Option<OffsetEntry> {
        let i = self.entries.partition_point(|e| e.position < position);
        self.entries.get(i).copied()
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Drops entries at or past `position` (truncation).
    pub fn truncate_to_position(&mut self, position: u32) {
        self.entries.retain(|e| e.position < position);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Decodes an index file; `None` if it is not a well-formed index of a
    /// segment of `segment_bytes` bytes (the caller then rebuilds it).
    pub fn decode(bytes: &[u8], segment_bytes: u64) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for e in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let rel = u32::from_be_bytes(e[0..4].try_into().ok()?);
            let pos = u32::from_be_bytes(e[4..8].try_into().ok()?);
            // Entries are added for batches after the first (position 0 is
            // never one), within i32::MAX of the base (segments roll before).
            if pos == 0 || pos as u64 >= segment_bytes || rel > i32::MAX as u32 {
                return None;
            }
            if let Some(last) = index.entries.last() {
                if rel <= last.relative_offset || pos <= last.position {
                    return None;
                }
            }
            index.entries.push(OffsetEntry { relative_offset: rel, position: pos });
        }
        Some(index)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Adds an entry if `timestamp` is larger than the last one.
    pub fn maybe_push(&mut self, timestamp: Timestamp, relative_offset: u32) {
        match self.entries.last() {
            Some(last) if timestamp <= last.timestamp => {}
            _ => self.entries.push(TimeEntry { timestamp, relative_offset }),
        }
    }

    /// The relative offset from which to scan for the first batch with
    /// `maxTimestamp >= timestamp`: the last entry whose timestamp is smaller
    /// (every batch before it is older), or the segment start.
    pub fn scan_start(&self, timestamp: Timestamp) -> u32 {
        let i = self.entries.partition_point(|e| e.timestamp < timestamp);
        i.checked_sub(1).map(|i| self.entries[i].relative_offset).unwrap_or(0)
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    pub fn truncate_to_relative_offset(&mut self, relative_offset: u32) {
        self.entries.retain(|e| e.relative_offset < relative_offset);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return None;
        }
        let mut index = TimeIndex::default();
        for e in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let ts = i64::from_be_bytes(e[0..8].try_into().ok()?);
            let rel = u32::from_be_bytes(e[8..12].try_into().ok()?);
            if rel > i32::MAX as u32 {
                return None;
            }
            if let Some(last) = index.entries.last() {
                if ts <= last.timestamp || rel < last.relative_offset {
                    return None;
                }
            }
            index.entries.push(TimeEntry { timestamp: ts, relative_offset: rel });
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_and_round_trip() {
        let mut i = OffsetIndex::default();
        assert_eq!(i.lookup(5), None);
        i.push(10, 4096);
        i.push(20, 8200);
        i.push(35, 12400);
        assert_eq!(i.lookup(9), None);
        assert_eq!(i.lookup(10).unwrap().position, 4096);
        assert_eq!(i.lookup(34).unwrap().position, 8200);
        assert_eq!(i.lookup(1000).unwrap().position, 12400);
        assert_eq!(i.last_position_in(0, 9000), Some(8200));
        assert_eq!(i.last_position_in(8200, 9000), None);
        let d = OffsetIndex::decode(&i.encode(), 20000).unwrap();
        assert_eq!(d, i);
        assert!(OffsetIndex::decode(&i.encode(), 10000).is_none(), "position past the segment");
        assert!(OffsetIndex::decode(&i.encode()[..7], 20000).is_none());
        i.truncate_to_position(8200);
        assert_eq!(i.len(), 1);
    }

    #[test]
    fn time_index_scan_start_and_round_trip() {
        let mut t = TimeIndex::default();
        t.maybe_push(100, 0);
        t.maybe_push(100, 3);
        t.maybe_push(200, 5);
        t.maybe_push(300, 9);
        assert_eq!(t.scan_start(50), 0);
        assert_eq!(t.scan_start(150), 0);
        assert_eq!(t.scan_start(250), 5);
        assert_eq!(t.scan_start(10_000), 9);
        assert_eq!(TimeIndex::decode(&t.encode()).unwrap(), t);
        let mut bad = t.encode();
        // The second timestamp becomes smaller than the first: not an index.
        bad[12..20].copy_from_slice(&0i64.to_be_bytes());
        assert!(TimeIndex::decode(&bad).is_none());
    }
}
