//! The Kafka APIs a shard serves, one module each. A handler decodes its
//! request body, does the work with the shard's services (or asks the
//! controller), and encodes the response ([`crate::response`]).
//!
//! Handling has two phases so that one connection's requests pipeline:
//! [`handle`] runs in request order and does what must happen in that order
//! (Produce assigns offsets here); it may return a [`Reply::Later`] future
//! for the waiting part (acknowledgments, fetch long polls), which the
//! connection awaits in order while it already handles the next requests.

mod acls;
mod alter_configs;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod elect_leaders;
pub(crate) mod fetch;
mod groups;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
mod offsets;
mod produce;
mod quotas;
mod scram;
pub(crate) mod txn;
mod txn_admin;
pub(crate) mod txn_markers;
mod txn_offsets;

use kafka_protocol::messages::ApiKey;
use net::codec::{DecodeError, Request};
use net::kafka_protocol;

use std::rc::Rc;

use kafka_protocol::error::ResponseError;

use crate::context::ConnContext;
use crate::controller::Answer;
use crate::error::{ControllerError, Refusal};
use crate::metadata::{MetadataImage, TopicMeta};
pub use crate::response::{respond, respond_in, HandlerResult, Later, Out, Part, Reply};
use crate::shard::Shard;
use engine::disk::DmaDisk;
use engine::PartitionLog;

/// Handles one request from the client of `context`.
pub async fn handle(shard: &Rc<Shard>, request: &Request, context: &ConnContext) -> Reply {
    match request.api {
        ApiKey::Produce => produce::handle(shard, request, context).await,
        ApiKey::Fetch => {
            let (shard, request) = (shard.clone(), request.clone());
            let client_id = request.header.client_id.as_deref().unwrap_or("");
            let client = fetch::FetchClient {
                zero_copy: context.zero_copy,
                quota: shard.quota_of(crate::quotas::QuotaKind::Fetch, context, client_id),
                mute: context.mute.clone(),
            };
            let context = shard.config.authorizer.then(|| context.clone());
            Reply::Later(Box::pin(async move {
                fetch::handle(&shard, &request, context.as_ref(), client).await
            }))
        }
        ApiKey::JoinGroup => groups::join_group(shard, request, context),
        ApiKey::SyncGroup => groups::sync_group(shard, request, context),
        ApiKey::OffsetCommit => offsets::offset_commit(shard, request, context).await,
        ApiKey::InitProducerId => {
            Reply::Now(init_producer_id::handle(shard, request, context).await)
        }
        ApiKey::EndTxn => Reply::Now(txn::end_txn(shard, request, context).await),
        _ => Reply::Now(handle_now(shard, request, context).await),
    }
}

async fn handle_now(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    match request.api {
        ApiKey::ApiVersions => api_versions::handle(request),
        ApiKey::Metadata => metadata::handle(shard, request, context).await,
        ApiKey::ListOffsets => list_offsets::handle(shard, request, context).await,
        ApiKey::CreateTopics => create_topics::handle(shard, request, context).await,
        ApiKey::DescribeConfigs => describe_configs::handle(shard, request, context).await,
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(shard, request, context),
        ApiKey::DescribeProducers => describe_producers::handle(shard, request, context),
        ApiKey::IncrementalAlterConfigs => alter_configs::handle(shard, request, context).await,
        ApiKey::AlterConfigs => alter_configs::handle_legacy(shard, request, context).await,
        ApiKey::DeleteTopics => delete_topics::handle(shard, request, context).await,
        ApiKey::DeleteRecords => delete_records::handle(shard, request, context).await,
        ApiKey::CreatePartitions => create_partitions::handle(shard, request, context).await,
        ApiKey::DescribeCluster => describe_cluster::handle(shard, request, context),
        ApiKey::DescribeQuorum => describe_quorum::handle(shard, request, context).await,
        ApiKey::FindCoordinator => groups::find_coordinator(shard, request, context).await,
        ApiKey::Heartbeat => groups::heartbeat(shard, request, context),
        ApiKey::LeaveGroup => groups::leave_group(shard, request, context),
        ApiKey::DescribeGroups => groups::describe_groups(shard, request, context),
        ApiKey::ListGroups => groups::list_groups(shard, request, context),
        ApiKey::DeleteGroups => groups::delete_groups(shard, request, context).await,
        ApiKey::OffsetFetch => offsets::offset_fetch(shard, request, context),
        ApiKey::AddPartitionsToTxn => txn::add_partitions_to_txn(shard, request, context).await,
        ApiKey::WriteTxnMarkers => txn_markers::write_txn_markers(shard, request, context).await,
        ApiKey::AddOffsetsToTxn => txn_offsets::add_offsets_to_txn(shard, request, context).await,
        ApiKey::TxnOffsetCommit => txn_offsets::txn_offset_commit(shard, request, context).await,
        ApiKey::DescribeTransactions => txn_admin::describe_transactions(shard, request, context),
        ApiKey::ListTransactions => txn_admin::list_transactions(shard, request, context),
        ApiKey::OffsetDelete => offsets::offset_delete(shard, request, context).await,
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch::handle(shard, request, context),
        ApiKey::ElectLeaders => elect_leaders::handle(shard, request, context).await,
        ApiKey::DescribeUserScramCredentials => scram::describe(shard, request, context),
        ApiKey::AlterUserScramCredentials => scram::alter(shard, request, context).await,
        ApiKey::CreateAcls => acls::create(shard, request, context).await,
        ApiKey::DescribeAcls => acls::describe(shard, request, context),
        ApiKey::DeleteAcls => acls::delete(shard, request, context).await,
        ApiKey::DescribeClientQuotas => quotas::describe(shard, request, context),
        ApiKey::AlterClientQuotas => quotas::alter(shard, request, context).await,
        other => Err(DecodeError::UnknownApi(other as i16)),
    }
}

/// Whether the client may create `topic`: CREATE on the cluster or on
/// the topic (Kafka's CreateTopics and auto-creation check).
pub fn may_create(
    context: &ConnContext,
    config: &crate::config::NodeConfig,
    image: &MetadataImage,
    topic: &str,
) -> bool {
    use auth::acl::{Operation, ResourceType};
    context.may_on_cluster(config, image, Operation::Create)
        || context.may(config, image, Operation::Create, ResourceType::Topic, topic)
}

/// The log of a partition this shard leads, for a request that names it
/// and (Fetch v9+, ListOffsets v4+, OffsetForLeaderEpoch v2+) the leader
/// epoch the client knows (-1: none). A client behind this shard's image
/// gets `FENCED_LEADER_EPOCH`, one ahead of it `UNKNOWN_LEADER_EPOCH`: both
/// refresh their metadata and retry, as with Kafka.
pub fn led_log(
    shard: &Shard,
    image: &MetadataImage,
    topic: &str,
    index: i32,
    current_leader_epoch: i32,
) -> Result<PartitionLog<DmaDisk>, ResponseError> {
    held_log(shard, image, topic, index, current_leader_epoch, false)
}

/// As [`led_log`], but `followers_too`: a follower's replica serves as
/// well (a consumer's Fetch v11+, KIP-392's fetch from follower).
pub fn held_log(
    shard: &Shard,
    image: &MetadataImage,
    topic: &str,
    index: i32,
    current_leader_epoch: i32,
    followers_too: bool,
) -> Result<PartitionLog<DmaDisk>, ResponseError> {
    let meta = image.partition(topic, index).ok_or(ResponseError::UnknownTopicOrPartition)?;
    if current_leader_epoch >= 0 {
        match current_leader_epoch.cmp(&meta.leader_epoch.0) {
            std::cmp::Ordering::Less => return Err(ResponseError::FencedLeaderEpoch),
            std::cmp::Ordering::Greater => return Err(ResponseError::UnknownLeaderEpoch),
            std::cmp::Ordering::Equal => {}
        }
    }
    let me = shard.broker();
    let held = meta.leader == Some(me) || (followers_too && meta.replicas.contains(&me));
    if !held {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    shard.partitions.log(topic, index).ok_or(ResponseError::NotLeaderOrFollower)
}

/// One outcome per part of a command (a topic, a resource), in order: the
/// controller's, or the refusal its missing answer stands for. Never a
/// success the controller did not report.
pub struct Outcomes<T> {
    answer: Result<std::vec::IntoIter<Result<T, Refusal>>, Refusal>,
}

impl<T> Outcomes<T> {
    /// Takes the outcomes `pick` finds in the controller's answer.
    fn of(
        answer: Result<Answer, ControllerError>,
        pick: impl FnOnce(Answer) -> Result<Vec<Result<T, Refusal>>, Answer>,
    ) -> Outcomes<T> {
        let answer = match answer.map(pick) {
            Ok(Ok(outcomes)) => Ok(outcomes.into_iter()),
            Ok(Err(other)) => Err(ControllerError::Unexpected(format!("{other:?}")).refusal()),
            Err(e) => Err(e.refusal()),
        };
        Outcomes { answer }
    }

    /// No command was sent: no part has an outcome.
    pub fn none() -> Outcomes<T> {
        Outcomes { answer: Ok(Vec::new().into_iter()) }
    }

    /// The next part's outcome.
    pub fn next_outcome(&mut self) -> Result<T, Refusal> {
        match &mut self.answer {
            Ok(outcomes) => outcomes.next().unwrap_or_else(|| {
                Err(Refusal::new(
                    ResponseError::UnknownServerError,
                    "no outcome from the controller",
                ))
            }),
            Err(refusal) => Err(refusal.clone()),
        }
    }
}

impl Outcomes<()> {
    /// The outcomes of DeleteTopics, CreatePartitions, AlterConfigs.
    pub fn of_changes(answer: Result<Answer, ControllerError>) -> Outcomes<()> {
        Outcomes::of(answer, |a| match a {
            Answer::Outcomes(o) => Ok(o),
            other => Err(other),
        })
    }
}

impl Outcomes<TopicMeta> {
    /// The outcomes of CreateTopics.
    pub fn of_topics(answer: Result<Answer, ControllerError>) -> Outcomes<TopicMeta> {
        Outcomes::of(answer, |a| match a {
            Answer::Topics(t) => Ok(t),
            other => Err(other),
        })
    }
}
