//! A voter's durable Raft log: its [`Write`]s, in order, in an engine log
//! (`<data>/__raft_metadata-0`, `Flush::Fsync`: a write is fdatasynced
//! before [`RaftLogFile::persist`] returns, so before any vote or append
//! it describes is acknowledged to a peer).
//!
//! Each batch holds the writes of one `Ready`, one record per write, its
//! value [`quorum::wire::encode_write`]. A snapshot write is followed in
//! its batch by the hard state of that moment, so that everything from the
//! last snapshot on rebuilds the store on its own: [`RaftLogFile::open`]
//! replays from there. Runs on shard 0 of a controller node.

use std::path::Path;
use std::rc::Rc;

use bytes::BytesMut;
use engine::batch::{build, parse_records};
use engine::disk::Disk;
use engine::{Flusher, LogConfig, PartitionLog, SystemClock};
use quorum::wire::{decode_write, encode_write};
use quorum::{LogStore, Write};

/// Directory name of a voter's Raft log.
pub const RAFT_LOG_DIR: &str = "__raft_metadata-0";

/// Largest batch of writes: a snapshot of the metadata image with the
/// entries of one `Ready`.
pub const RAFT_BATCH_BYTES_MAX: usize = 128 << 20;

pub struct RaftLogFile<D: Disk> {
    log: PartitionLog<D>,
}

impl<D: Disk> RaftLogFile<D> {
    /// Opens the log under `data_dir` and rebuilds the store of a quorum of
    /// `voters` from it (an empty store for a new log).
    pub async fn open(
        disk: Rc<D>,
        data_dir: &Path,
        flusher: &Flusher<D>,
        voters: &[u64],
    ) -> Result<(RaftLogFile<D>, LogStore), String> {
        let config = LogConfig { max_message_bytes: RAFT_BATCH_BYTES_MAX, ..LogConfig::default() };
        let dir = data_dir.join(RAFT_LOG_DIR);
        let log = PartitionLog::open(disk, &dir, config, flusher, Rc::new(SystemClock))
            .await
            .map_err(|e| format!("raft log {}: {e}", dir.display()))?;
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
            store.write(w);
        }
        Ok((RaftLogFile { log }, store))
    }

    /// Appends `writes` and returns once they are durable. `hard_state`
    /// is the store's after them: it follows any snapshot among them.
    pub async fn persist(&self, writes: &[Write], store: &LogStore) -> Result<(), String> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut values: Vec<Vec<u8>> = writes.iter().map(encode_write).collect();
        if writes.iter().any(|w| matches!(w, Write::Snapshot(_))) {
            values.push(encode_write(&Write::HardState(store.hard_state().clone())));
        }
        let kv: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let batch = build(&kv, engine::Clock::now_ms(&SystemClock));
        let info =
            self.log.append(BytesMut::from(&batch[..]), 0).await.map_err(|e| e.to_string())?;
        self.log.wait_acked(info.end_offset).await.map_err(|e| e.to_string())
    }

    /// The engine log, to close with the shard's logs.
    pub fn log(&self) -> &PartitionLog<D> {
        &self.log
    }
}
