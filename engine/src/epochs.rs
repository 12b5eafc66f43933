//! The leader epoch cache of one partition: where each leader epoch's
//! batches start (KIP-101), for OffsetForLeaderEpoch and for truncating a
//! replica that diverged from its leader.
//!
//! Pure state, owned by the partition's [`crate::PartitionLog`] on its
//! shard; no I/O here. The log folds every appended batch's
//! `partitionLeaderEpoch` into it, trims it on truncation and retention,
//! and keeps it in `<dir>/leader-epoch-checkpoint`, written by
//! [`LeaderEpochCache::encode`]:
//!
//! ```text
//! 1                   format version
//! <covered_end>       the log end the entries describe
//! <n>                 number of entries
//! <epoch> <offset>    n lines, epochs and offsets ascending
//! crc <crc32 hex>     CRC-32 (IEEE) of every byte above
//! ```
//!
//! The entries are exact for the log below `covered_end`; the log rebuilds
//! the rest from the batch headers after it. A damaged file is ignored
//! (rebuilt from every batch), never trusted.

use crate::types::{LeaderEpoch, Offset};

/// File name of the checkpoint in the partition directory (Kafka's).
pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Kafka's answer for an epoch or offset it has no entry for.
pub const UNDEFINED_EPOCH: LeaderEpoch = -1;
pub const UNDEFINED_OFFSET: Offset = -1;

/// One leader epoch and the offset of its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    /// Ascending in both epoch and start offset.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The newest epoch and where it starts.
    pub fn latest(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// Notes a batch of `epoch` at `offset`: a new entry when the epoch is
    /// newer than the latest. A batch of an older epoch (Kafka's message
    /// format before epochs, or a bug) changes nothing. Returns whether an
    /// entry was added.
    pub fn assign(&mut self, epoch: LeaderEpoch, offset: Offset) -> bool {
        if epoch < 0 || self.latest().is_some_and(|l| epoch <= l.epoch || offset < l.start_offset) {
            return false;
        }
        self.entries.push(EpochEntry { epoch, start_offset: offset });
        true
    }

    /// The epoch of the batch holding `offset` (Kafka's `epochForOffset`):
    /// the newest entry starting at or before it.
    pub fn epoch_of(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.entries.iter().rev().find(|e| e.start_offset <= offset).map(|e| e.epoch)
    }

    /// The log was truncated to `end`: epochs starting at or past it go.
    pub fn truncate_from_end(&mut self, end: Offset) {
        self.entries.retain(|e| e.start_offset < end);
    }

    /// The log now starts at `start`: the epoch holding it starts there,
    /// earlier ones go.
    pub fn truncate_from_start(&mut self, start: Offset) {
        let Some(holding) = self.entries.iter().rposition(|e| e.start_offset <= start) else {
            return;
        };
        self.entries.drain(..holding);
        self.entries[0].start_offset = start;
    }

    /// OffsetForLeaderEpoch: the largest epoch at most `requested` and the
    /// offset where the epoch after it starts (`log_end` for the latest),
    /// i.e. the end of `requested` as this log knows it. A replica truncates
    /// to it. Kafka's answers for the edge cases: an epoch newer than any
    /// here is undefined; one older than every entry ends where the first
    /// entry starts.
    pub fn end_offset_for(&self, requested: LeaderEpoch, log_end: Offset) -> (LeaderEpoch, Offset) {
        let undefined = (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        let Some(latest) = self.latest() else { return undefined };
        if requested == UNDEFINED_EPOCH {
            return undefined;
        }
        if requested == latest.epoch {
            return (latest.epoch, log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return undefined;
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The checkpoint's bytes, the entries describing the log below `covered_end`.
    pub fn encode(&self, covered_end: Offset) -> Vec<u8> {
        let mut text = format!("1\n{covered_end}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        let crc = crc32fast::hash(text.as_bytes());
        text.push_str(&format!("crc {crc:08x}\n"));
        text.into_bytes()
    }

    /// A checkpoint and the log end it covers; `None` for damaged bytes.
    pub fn decode(bytes: &[u8]) -> Option<(LeaderEpochCache, Offset)> {
        let text = std::str::from_utf8(bytes).ok()?;
        let body_end = text.rfind("crc ")?;
        let (body, crc) = text.split_at(body_end);
        let crc = u32::from_str_radix(crc.strip_prefix("crc ")?.strip_suffix('\n')?, 16).ok()?;
        if crc32fast::hash(body.as_bytes()) != crc {
            return None;
        }
        let mut lines = body.lines();
        if lines.next()? != "1" {
            return None;
        }
        let covered_end: Offset = lines.next()?.parse().ok()?;
        let n: usize = lines.next()?.parse().ok()?;
        let mut cache = LeaderEpochCache::default();
        for _ in 0..n {
            let (epoch, offset) = lines.next()?.split_once(' ')?;
            if !cache.assign(epoch.parse().ok()?, offset.parse().ok()?) {
                return None;
            }
        }
        lines.next().is_none().then_some((cache, covered_end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(LeaderEpoch, Offset)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(e, o) in entries {
            assert!(c.assign(e, o));
        }
        c
    }

    #[test]
    fn only_newer_epochs_start_entries() {
        let mut c = cache(&[(0, 0), (2, 10)]);
        assert!(!c.assign(2, 15), "the same epoch goes on");
        assert!(!c.assign(1, 20), "an older epoch changes nothing");
        assert!(!c.assign(-1, 20));
        assert!(c.assign(5, 20));
        assert_eq!(c.latest(), Some(EpochEntry { epoch: 5, start_offset: 20 }));
        assert_eq!((c.epoch_of(9), c.epoch_of(10), c.epoch_of(19)), (Some(0), Some(2), Some(2)));
        assert_eq!(c.epoch_of(1000), Some(5));
        assert_eq!(LeaderEpochCache::default().epoch_of(0), None);
    }

    /// Kafka's answers (LeaderEpochFileCache.endOffsetFor) for every case.
    #[test]
    fn end_offsets_for_epochs() {
        let c = cache(&[(1, 5), (3, 10), (4, 30)]);
        assert_eq!(c.end_offset_for(4, 42), (4, 42), "the latest epoch ends at the log end");
        assert_eq!(c.end_offset_for(3, 42), (3, 30));
        assert_eq!(c.end_offset_for(2, 42), (1, 10), "an epoch with no batches: the one before");
        assert_eq!(c.end_offset_for(0, 42), (0, 5), "older than every entry");
        assert_eq!(c.end_offset_for(7, 42), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, 42), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        let empty = LeaderEpochCache::default();
        assert_eq!(empty.end_offset_for(0, 0), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 5), (3, 10), (4, 30)]);
        c.truncate_from_end(30);
        assert_eq!(c, cache(&[(1, 5), (3, 10)]));
        c.truncate_from_start(12);
        assert_eq!(c, cache(&[(3, 12)]));
        c.truncate_from_start(2);
        assert_eq!(c, cache(&[(3, 12)]), "before every entry: nothing to move");
        c.truncate_from_end(12);
        assert_eq!(c.latest(), None);
    }

    #[test]
    fn checkpoints_round_trip_and_damage_is_refused() {
        let c = cache(&[(0, 0), (2, 17), (9, 1 << 40)]);
        let bytes = c.encode(1 << 41);
        assert_eq!(LeaderEpochCache::decode(&bytes), Some((c.clone(), 1 << 41)));
        assert_eq!(
            LeaderEpochCache::decode(&LeaderEpochCache::default().encode(0)),
            Some((LeaderEpochCache::default(), 0))
        );
        for cut in 0..bytes.len() {
            assert_eq!(LeaderEpochCache::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[4] ^= 1;
        assert_eq!(LeaderEpochCache::decode(&flipped), None);
    }
}
