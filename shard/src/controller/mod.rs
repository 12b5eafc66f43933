//! The controller's parts that do not run it: the pure state machine
//! ([`machine`]: `propose(&image, command) -> records`, `apply(image,
//! record) -> image`), the messages shards send it ([`ControllerMsg`]),
//! the shards' side of them ([`client`]), and the [`MetadataLog`] trait
//! with the single node's implementation.
//!
//! Nothing here owns a task or a core: the drivers that feed the machine
//! live in [`crate::cluster`] (`local` for a single node, `controller` for
//! a Raft quorum), and a shard holds a [`client::ControllerClient`].

pub mod client;
pub mod machine;

use bytes::BytesMut;
use engine::batch::{build, parse_records};
use engine::disk::Disk;
use engine::{PartitionLog, SystemClock};

pub use machine::{
    apply_config_changes, Answer, Command, ConfigChange, ConfigOp, Limits, Outcome, PartitionsSpec,
    QuotaChange, ScramChange, TopicOutcome, TopicSpec, PRODUCER_ID_BLOCK, TOPIC_PARTITIONS_MAX,
};

use crate::config::NodeConfig;
use crate::error::ControllerError;
use crate::ids::{NodeId, ShardId};
use crate::listener::SecurityProtocol;
use crate::metadata::{MetadataRecord, NodeMeta};

/// Directory name of the metadata log.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Largest commit to the metadata log (one batch): a command creating
/// topics of 10,000 partitions writes about 300 KB per topic
/// ([`crate::metadata::records`]); fencing a node writes one record per
/// partition it held. Larger than Kafka's 1 MiB batches, far below a segment.
pub const METADATA_COMMIT_BYTES_MAX: usize = 64 << 20;

/// What a shard asks the node's controller.
pub enum ControllerMsg {
    /// A command, and where its answer goes: the answer once its records
    /// are committed and every shard of this node has the new image, or
    /// why the controller could not be reached.
    Command { command: Command, reply: flume::Sender<Result<Answer, ControllerError>> },
    /// The state of the metadata quorum (DescribeQuorum).
    DescribeQuorum { reply: flume::Sender<Result<QuorumState, ControllerError>> },
}

/// The metadata quorum as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    /// The node whose controller is active.
    pub leader: NodeId,
    /// The leader's epoch (its Raft term; 1 for a single node).
    pub epoch: u64,
    /// The metadata log's committed end.
    pub high_watermark: u64,
    /// Each voter's node and log end (the last entry it holds).
    pub voters: Vec<(NodeId, u64)>,
}

/// Where the metadata records are kept, in order.
#[allow(async_fn_in_trait)]
pub trait MetadataLog {
    /// Hands every committed record to `apply`, oldest first.
    async fn replay(
        &mut self,
        apply: &mut dyn FnMut(MetadataRecord) -> Result<(), String>,
    ) -> Result<(), String>;
    /// Appends `records` as one unit; returns once they are committed
    /// (durable), or an error and none of them.
    async fn commit(&mut self, records: &[MetadataRecord]) -> Result<(), String>;
    /// The offset after the last committed record.
    fn end_offset(&self) -> u64;
}

/// The metadata log of a single node: one engine log, fsynced, each
/// commit one batch whose records' values are [`MetadataRecord::encode`]d.
pub struct EngineMetadataLog<D: Disk> {
    log: PartitionLog<D>,
    /// The node that writes it: records from before node registration
    /// name its shards.
    node: NodeId,
}

impl<D: Disk> EngineMetadataLog<D> {
    pub fn new(log: PartitionLog<D>, node: NodeId) -> Self {
        EngineMetadataLog { log, node }
    }
}

impl<D: Disk> MetadataLog for EngineMetadataLog<D> {
    async fn replay(
        &mut self,
        apply: &mut dyn FnMut(MetadataRecord) -> Result<(), String>,
    ) -> Result<(), String> {
        let node = self.node;
        self.log
            .replay(self.log.log_start_offset(), |_, batch| {
                let invalid = |e: String| engine::LogError::Invalid(format!("metadata log: {e}"));
                for r in parse_records(batch).map_err(|e| invalid(e.to_string()))? {
                    let value = r.value.ok_or_else(|| invalid("record without a value".into()))?;
                    apply(MetadataRecord::decode(value, node).map_err(invalid)?)
                        .map_err(invalid)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn commit(&mut self, records: &[MetadataRecord]) -> Result<(), String> {
        let values: Vec<Vec<u8>> = records.iter().map(|r| r.encode()).collect();
        let kv: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let batch = build(&kv, engine::Clock::now_ms(&SystemClock));
        let info =
            self.log.append(BytesMut::from(&batch[..]), 0).await.map_err(|e| e.to_string())?;
        self.log.wait_acked(info.end_offset).await.map_err(|e| e.to_string())
    }

    fn end_offset(&self) -> u64 {
        self.log.acked_end_offset().max(0) as u64
    }
}

impl Limits {
    /// What a node's flags allow its controller to create.
    pub fn of(config: &NodeConfig) -> Limits {
        Limits {
            default_partitions: config.default_partitions,
            default_replication_factor: config.default_replication_factor,
            partitions_max: config.partitions_max.unwrap_or(usize::MAX),
            offsets_segment_bytes: config.offsets_segment_bytes,
        }
    }
}

/// This node as the metadata records it.
pub fn local_node(config: &NodeConfig) -> NodeMeta {
    NodeMeta {
        id: NodeId(config.node_id),
        host: config.advertised_host().to_string(),
        port: config.advertised_port_of(ShardId(0)),
        // Listed only beyond the default (older records leave it out).
        listeners: {
            let all = config.advertised_listeners();
            let plain = all.len() == 1 && all[0].protocol == SecurityProtocol::Plaintext;
            if plain {
                Vec::new()
            } else {
                all
            }
        },
        shards: config.shards,
        rack: config.rack(),
        fenced: false,
    }
}
