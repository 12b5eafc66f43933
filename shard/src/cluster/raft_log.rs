//! A voter's durable Raft log: its [`Write`]s, in order, in an engine log
//! (`<data>/__raft_metadata-0`, `Flush::Fsync`: a write is fdatasynced
//! before [`RaftLogFile::persist`] returns, so before any vote or append
//! it describes is acknowledged to a peer).
//!
//! Each batch holds the writes of one `Ready`, one record per write, its
//! value [`quorum::wire::encode_write`]. A snapshot write is followed in
//! its batch by the entries the store keeps after it and the hard state of
//! that moment, so that everything from the last snapshot on rebuilds the
//! store on its own: [`RaftLogFile::open`]
//! replays from there, and segments wholly before it are deleted. Runs on
//! shard 0 of a controller node.

use bytes::BytesMut;
use engine::batch::{build, parse_records};
use engine::disk::Disk;
use engine::{LogConfig, PartitionLog, SystemClock};
use quorum::wire::{decode_write, encode_write};
use quorum::{LogStore, Write};

/// Directory name of a voter's Raft log.
pub const RAFT_LOG_DIR: &str = "__raft_metadata-0";

/// Largest batch of writes: a snapshot of the metadata image with the
/// entries of one `Ready` (an image of 10,000-partition topics is about
/// 300 KB a topic).
pub const RAFT_BATCH_BYTES_MAX: usize = 64 << 20;

/// Segment size of the Raft log: segments wholly before the last snapshot
/// are deleted, so the log on disk stays within a few segments.
pub const RAFT_SEGMENT_BYTES: u64 = 64 << 20;

pub struct RaftLogFile<D: Disk> {
    log: PartitionLog<D>,
}

impl<D: Disk> RaftLogFile<D> {
    /// The engine log's configuration.
    pub fn log_config() -> LogConfig {
        LogConfig {
            max_message_bytes: RAFT_BATCH_BYTES_MAX,
            segment_bytes: RAFT_SEGMENT_BYTES,
            // The free space kept aside from partitions' appends is for
            // this log: a full disk refuses produces, not metadata.
            keep_free_bytes: 0,
            ..LogConfig::default()
        }
    }

    /// Rebuilds the store of a quorum of `voters` from `log`, opened with
    /// [`Self::log_config`] in [`RAFT_LOG_DIR`] (an empty store for a new log).
    pub async fn open(
        log: PartitionLog<D>,
        voters: &[u64],
    ) -> Result<(RaftLogFile<D>, LogStore), String> {
        let dir = log.dir().to_path_buf();
        let mut writes = Vec::new();
        log.replay(log.log_start_offset(), |_, batch| {
            let invalid = |e: String| engine::LogError::Invalid(format!("raft log: {e}"));
            for r in parse_records(batch).map_err(|e| invalid(e.to_string()))? {
                let value = r.value.ok_or_else(|| invalid("a record without a value".into()))?;
                writes.push(decode_write(value).map_err(|e| invalid(e.to_string()))?);
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut store = LogStore::new(voters);
        let from = writes.iter().rposition(|w| matches!(w, Write::Snapshot(_))).unwrap_or(0);
        for w in &writes[from..] {
            store.check(w).map_err(|e| format!("raft log {}: {e}", dir.display()))?;
            store.write(w);
        }
        Ok((RaftLogFile { log }, store))
    }

    /// Appends `writes` and returns once they are durable. `store` is the
    /// store after them: its entries and hard state follow any snapshot
    /// among them.
    pub async fn persist(&self, writes: &[Write], store: &LogStore) -> Result<(), String> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut values: Vec<Vec<u8>> = writes.iter().map(encode_write).collect();
        if writes.iter().any(|w| matches!(w, Write::Snapshot(_))) {
            // Entries the log already held past the snapshot precede it in
            // the file: written again after it, with the hard state, so that
            // the file from the snapshot on holds the whole store.
            let tail = store.entries_after_snapshot();
            if !tail.is_empty() {
                values.push(encode_write(&Write::Entries(tail.to_vec())));
            }
            values.push(encode_write(&Write::HardState(store.hard_state().clone())));
        }
        let kv: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let batch = build(&kv, engine::Clock::now_ms(&SystemClock));
        let info =
            self.log.append(BytesMut::from(&batch[..]), 0).await.map_err(|e| e.to_string())?;
        self.log.wait_acked(info.end_offset).await.map_err(|e| e.to_string())?;
        // What precedes the last snapshot is never replayed again.
        if let Some(at) = writes.iter().rposition(|w| matches!(w, Write::Snapshot(_))) {
            let offset = info.base_offset + at as i64;
            self.log.delete_segments_before(offset).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The engine log, to close with the shard's logs.
    pub fn log(&self) -> &PartitionLog<D> {
        &self.log
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::rc::Rc;

    use engine::disk::MemDisk;
    use engine::testkit::run_with_flusher;
    use engine::{Flush, Flusher};
    use quorum::{Entry, HardState};

    use super::*;

    /// Tiny segments: the log rolls every few writes, and a snapshot
    /// removes the segments before it; a reopen rebuilds the same store.
    #[test]
    fn writes_replay_from_the_last_snapshot_and_older_segments_go() {
        let disk = Rc::new(MemDisk::new());
        let flusher = Flusher::new(Flush::Fsync);
        let dir = Path::new("/data");
        let config =
            LogConfig { max_message_bytes: 4096, segment_bytes: 4096, ..LogConfig::default() };
        let entry =
            |index, term| Entry { index, term, data: vec![7u8; 300].into(), ..Default::default() };
        run_with_flusher(&flusher, async {
            let open = || async {
                let dir = dir.join(RAFT_LOG_DIR);
                let clock = Rc::new(SystemClock);
                let log = PartitionLog::open(disk.clone(), &dir, config.clone(), &flusher, clock);
                RaftLogFile::open(log.await.unwrap(), &[1, 2, 3]).await
            };
            let (file, mut store) = open().await.unwrap();
            for i in 1..=40 {
                let hs = HardState { term: 1, vote: 2, commit: i, ..Default::default() };
                let writes = vec![Write::Entries(vec![entry(i, 1)]), Write::HardState(hs)];
                for w in &writes {
                    store.write(w);
                }
                file.persist(&writes, &store).await.unwrap();
            }
            let segments = file.log().segment_count();
            assert!(segments > 3, "{segments} segments");
            let snapshot = Write::Snapshot(store.snapshot_at(30, b"image".to_vec()).unwrap());
            store.write(&snapshot);
            file.persist(std::slice::from_ref(&snapshot), &store).await.unwrap();
            assert!(file.log().segment_count() < segments, "segments before the snapshot go");
            file.log().close().await.unwrap();
            let (_, again) = open().await.unwrap();
            assert_eq!(again.hard_state(), store.hard_state());
            assert_eq!(again.snapshot_ref(), store.snapshot_ref());
            assert_eq!(again.entries_after_snapshot(), store.entries_after_snapshot());
            assert_eq!(again.entries_after_snapshot().len(), 10);
        });
    }
}
