//! The controller: owner of the metadata log, on shard 0.
//!
//! What a request changes is decided by the pure state machine in
//! [`machine`]; this driver feeds it. It replays the [`MetadataLog`] at
//! startup, then serves [`ControllerMsg`]s one at a time: propose, commit
//! the records to the log (durable), fold them into a new image, and hand
//! the image to every shard, waiting until each has opened its new
//! partitions. Only then does the request get its answer, so a client that
//! created a topic can produce to it at once.
//!
//! The log is the local engine log today ([`EngineMetadataLog`],
//! `<data>/__cluster_metadata-0`, `Flush::Fsync`); a Raft quorum is the
//! next implementation of the same trait.

pub mod machine;

use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use engine::batch::{build, parse_records};
use engine::disk::Disk;
use engine::{LogConfig, PartitionLog, SystemClock};
use log::{info, warn};
use net::kafka_protocol::error::ResponseError;

pub use machine::{
    apply_config_changes, Answer, Command, ConfigChange, ConfigOp, Limits, Outcome, PartitionsSpec,
    TopicOutcome, TopicSpec, PRODUCER_ID_BLOCK, TOPIC_PARTITIONS_MAX,
};

use crate::ids::NodeId;
use crate::metadata::{MetadataImage, MetadataRecord, NodeMeta};
use crate::shard::{Shard, ShardMsg};

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
    Command { command: Command, reply: flume::Sender<Result<Answer, String>> },
    /// The state of the metadata quorum (DescribeQuorum).
    DescribeQuorum { reply: flume::Sender<Result<QuorumState, String>> },
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

/// Sends `command` to the node's controller and waits for its answer.
pub async fn ask(
    controller: &flume::Sender<ControllerMsg>,
    command: Command,
) -> Result<Answer, String> {
    let (reply, answer) = flume::bounded(1);
    let unavailable = "controller unavailable".to_string();
    if controller.send_async(ControllerMsg::Command { command, reply }).await.is_err() {
        return Err(unavailable);
    }
    answer.recv_async().await.unwrap_or(Err(unavailable))
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

/// Runs the controller on shard 0 until the channel closes.
pub async fn run(
    shard: Rc<Shard>,
    inbox: flume::Receiver<ControllerMsg>,
    peers: Vec<flume::Sender<ShardMsg>>,
) {
    let mut controller = match Controller::open(shard.clone(), peers).await {
        Ok(c) => c,
        Err(e) => {
            // Without metadata no shard can serve: stop the node.
            eprintln!("fatal: metadata log: {e}");
            std::process::exit(1);
        }
    };
    while let Ok(msg) = inbox.recv_async().await {
        match msg {
            ControllerMsg::Command { command, reply } => {
                let _ = reply.send(controller.execute(command).await);
            }
            ControllerMsg::DescribeQuorum { reply } => {
                // A single node is its quorum's only voter, and leads it.
                let end = controller.log.end_offset();
                let node = controller.node;
                let state = QuorumState {
                    leader: node,
                    epoch: 1,
                    high_watermark: end,
                    voters: vec![(node, end)],
                };
                let _ = reply.send(Ok(state));
            }
        }
    }
}

struct Controller<L: MetadataLog> {
    /// This node: the controller of a single node is always its own.
    node: NodeId,
    log: L,
    image: Arc<MetadataImage>,
    limits: Limits,
    peers: Vec<flume::Sender<ShardMsg>>,
}

impl Controller<EngineMetadataLog<engine::disk::DmaDisk>> {
    async fn open(shard: Rc<Shard>, peers: Vec<flume::Sender<ShardMsg>>) -> Result<Self, String> {
        let dir = shard.config.data_dir.join(format!("{METADATA_TOPIC}-0"));
        let config =
            LogConfig { max_message_bytes: METADATA_COMMIT_BYTES_MAX, ..LogConfig::default() };
        let log = PartitionLog::open(
            shard.disk.clone(),
            &dir,
            config,
            &shard.flusher,
            Rc::new(SystemClock),
        )
        .await
        .map_err(|e| e.to_string())?;
        // Closed with the shard's logs at shutdown.
        shard.system_logs.borrow_mut().push(log.clone());
        let config = &shard.config;
        let limits = Limits::of(config);
        let node = NodeId(config.node_id);
        let log = EngineMetadataLog::new(log, node);
        let mut controller = Controller::replay(node, log, limits, peers).await?;
        // A single node's log names this node alone: another node id
        // would find none of its partitions here.
        if let Some(other) = controller.image.nodes.keys().find(|&&n| n != node) {
            return Err(format!(
                "the data directory {} belongs to node {other}; start with --node-id {other}",
                config.data_dir.display()
            ));
        }
        // Both before the first image reaches the shards: they serve once
        // they have it, and clients expect a cluster id and the offsets topic.
        controller.commit(Command::RegisterNode(local_node(config))).await?;
        controller.commit(Command::Bootstrap { cluster_id: random_id() }).await?;
        let image = &controller.image;
        info!(
            "controller: metadata epoch {} with {} topics, cluster id {}",
            image.epoch,
            image.topics.len(),
            image.cluster_id
        );
        controller.broadcast().await;
        Ok(controller)
    }
}

impl<L: MetadataLog> Controller<L> {
    /// The controller of `log` as of its last committed record.
    async fn replay(
        node: NodeId,
        mut log: L,
        limits: Limits,
        peers: Vec<flume::Sender<ShardMsg>>,
    ) -> Result<Self, String> {
        let mut image = MetadataImage::default();
        log.replay(&mut |r| {
            image.apply_mut(&r);
            Ok(())
        })
        .await?;
        Ok(Controller { node, log, image: Arc::new(image), limits, peers })
    }

    /// Proposes `command`, commits its records and hands the new image to
    /// every shard. An error only where the answer has no place for one
    /// (bootstrap, producer ids); otherwise a failed commit answers
    /// `KAFKA_STORAGE_ERROR` for everything it would have changed.
    async fn execute(&mut self, command: Command) -> Result<Answer, String> {
        let before = self.image.epoch;
        let answer = self.commit(command).await?;
        if self.image.epoch != before {
            self.broadcast().await;
        }
        Ok(answer)
    }

    /// Proposes `command`, commits its records and folds them into the
    /// image, without handing it to the shards.
    async fn commit(&mut self, command: Command) -> Result<Answer, String> {
        let proposal = machine::propose(&self.image, &self.limits, command, &mut random_bytes);
        if proposal.records.is_empty() {
            return Ok(proposal.answer);
        }
        if let Err(e) = self.log.commit(&proposal.records).await {
            warn!("controller: metadata log append failed: {e}");
            return proposal.answer.failed(ResponseError::KafkaStorageError.code(), &e);
        }
        self.image = Arc::new(self.image.applied(&proposal.records));
        Ok(proposal.answer)
    }

    /// Hands the image to every shard and waits until each has applied it.
    async fn broadcast(&self) {
        let mut waits = Vec::new();
        for peer in &self.peers {
            let (done, wait) = flume::bounded(1);
            let controller = Some(self.node);
            let msg = ShardMsg::Image { image: self.image.clone(), controller, done };
            if peer.send_async(msg).await.is_ok() {
                waits.push(wait);
            }
        }
        for w in waits {
            let _ = w.recv_async().await;
        }
    }
}

impl Limits {
    /// What a node's flags allow its controller to create.
    pub fn of(config: &crate::NodeConfig) -> Limits {
        Limits {
            default_partitions: config.default_partitions,
            default_replication_factor: config.default_replication_factor,
            partitions_max: config.partitions_max.unwrap_or(usize::MAX),
            offsets_segment_bytes: config.offsets_segment_bytes,
        }
    }
}

/// This node as the metadata records it.
pub fn local_node(config: &crate::NodeConfig) -> NodeMeta {
    NodeMeta {
        id: NodeId(config.node_id),
        host: config.advertised_host().to_string(),
        port: config.advertised_port_of(0),
        shards: config.shards,
        rack: config.rack(),
        fenced: false,
    }
}

/// 16 random bytes from the kernel.
pub fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    // SAFETY: `b` is a valid buffer of 16 bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    assert_eq!(n, 16, "getrandom");
    b
}

/// A Kafka-style cluster id: 16 random bytes in URL-safe base64, no padding.
pub fn random_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = random_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut out = Vec::with_capacity(22);
    // 22 characters of 6 bits cover 128 bits (the first holds 2).
    for _ in 0..22 {
        out.push(ALPHABET[(bits & 63) as usize]);
        bits >>= 6;
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}
