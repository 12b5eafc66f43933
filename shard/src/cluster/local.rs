//! The controller of a single node (no `--controller-quorum`), on shard 0.
//!
//! It feeds the pure state machine ([`crate::controller::machine`]): it
//! replays the [`MetadataLog`] at startup, then serves [`ControllerMsg`]s
//! one at a time: propose, commit the records to the log (durable), fold
//! them into a new image, and hand the image to every shard, waiting until
//! each has opened its new partitions. Only then does the request get its
//! answer, so a client that created a topic can produce to it at once.
//!
//! The log is the local engine log ([`EngineMetadataLog`],
//! `<data>/__cluster_metadata-0`, `Flush::Fsync`); the quorum's
//! controller ([`super::controller`]) keeps its records in Raft instead.

use std::rc::Rc;
use std::sync::Arc;

use engine::LogConfig;
use log::{info, warn};
use net::kafka_protocol::error::ResponseError;

use crate::controller::machine::{self, Answer, Command, Limits};
use crate::controller::{
    local_node, ControllerMsg, EngineMetadataLog, MetadataLog, QuorumState,
    METADATA_COMMIT_BYTES_MAX, METADATA_TOPIC,
};
use crate::error::ControllerError;
use crate::ids::{random_bytes, random_id, NodeId};
use crate::metadata::MetadataImage;
use crate::shard::{Shard, ShardMsg};

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
        let config = LogConfig {
            max_message_bytes: METADATA_COMMIT_BYTES_MAX,
            // The free space kept aside from partitions' appends is for
            // this log (as for a quorum's Raft log).
            keep_free_bytes: 0,
            ..LogConfig::default()
        };
        // Closed with the shard's logs at shutdown.
        let log = shard
            .partitions
            .open_system_log(&format!("{METADATA_TOPIC}-0"), config)
            .await
            .map_err(|e| e.to_string())?;
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
        controller
            .commit(Command::RegisterNode(local_node(config)))
            .await
            .map_err(|e| e.to_string())?;
        controller
            .commit(Command::Bootstrap {
                cluster_id: random_id(),
                scram: config.scram_credentials.clone(),
            })
            .await
            .map_err(|e| e.to_string())?;
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
    async fn execute(&mut self, command: Command) -> Result<Answer, ControllerError> {
        let before = self.image.epoch;
        let answer = self.commit(command).await?;
        if self.image.epoch != before {
            self.broadcast().await;
        }
        Ok(answer)
    }

    /// Proposes `command`, commits its records and folds them into the
    /// image, without handing it to the shards.
    async fn commit(&mut self, command: Command) -> Result<Answer, ControllerError> {
        let proposal = machine::propose(&self.image, &self.limits, command, &mut random_bytes);
        if proposal.records.is_empty() {
            return Ok(proposal.answer);
        }
        if let Err(e) = self.log.commit(&proposal.records).await {
            warn!("controller: metadata log append failed: {e}");
            return proposal.answer.failed(ResponseError::KafkaStorageError, &e);
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
