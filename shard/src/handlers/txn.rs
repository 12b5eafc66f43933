//! The transaction coordinator at work: InitProducerId with a
//! transactional id, AddPartitionsToTxn v0-v4 (v4's batched form with
//! `verify_only`, KIP-890) and EndTxn v0-v3; and what the coordinator does
//! on its own: writing its records to `__transaction_state` (acks=all),
//! completing a prepared transaction by having its COMMIT or ABORT
//! markers written to every partition of it (retried until written or
//! until this shard stops coordinating the id; the markers travel and are
//! written in [`super::txn_markers`], with WriteTxnMarkers), aborting
//! transactions past their timeout, and answering a leader's KIP-890
//! check before a producer's first transactional batch in a partition.
//!
//! On the shard that leads the id's `__transaction_state` partition; the
//! rules are [`crate::txns::state`]'s, the state [`crate::txns`]'. KIP-890
//! checks reach the coordinator from this shard, another shard of this
//! node over its channel ([`crate::local`]) or another node (TCP).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, EndTxnRequest, EndTxnResponse,
    ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use log::{info, warn};
use net::codec::Request;
use net::kafka_protocol;

use super::txn_markers::{send_markers, Fenced};
use super::{respond, HandlerResult};
use crate::context::ConnContext;
use crate::groups::OFFSETS_TOPIC;
use crate::local::{self, LocalCall};
use crate::shard::Shard;
use crate::txns::records::{self, TxnRecord, TxnStatus};
use crate::txns::state::{self, End, Init};
use crate::txns::{check_transactional_id, partition_for, Marker, TRANSACTION_TOPIC};
use auth::acl::{Operation, ResourceType};

/// How long one WriteTxnMarkers or KIP-890 check to another broker may
/// take before it is retried (markers) or answered retriable (produce).
pub(super) const PEER_CALL_LIMIT: Duration = Duration::from_secs(10);

/// Waits between rounds of markers that did not all land: the first, and
/// the longest (the wait doubles up to it).
const MARKER_RETRY_FIRST: Duration = Duration::from_millis(50);
const MARKER_RETRY_MAX: Duration = Duration::from_secs(1);

fn now_ms() -> i64 {
    engine::Clock::now_ms(&engine::SystemClock)
}

pub(super) fn code(e: ResponseError) -> i16 {
    e.code()
}

pub(super) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Older versions know `INVALID_PRODUCER_EPOCH` where newer ones say
/// `PRODUCER_FENCED` (Kafka maps it the same way).
pub(crate) fn fenced_as(code_: i16, old: bool) -> i16 {
    if old && code_ == code(ResponseError::ProducerFenced) {
        code(ResponseError::InvalidProducerEpoch)
    } else {
        code_
    }
}

/// The `__transaction_state` partition of `id` if this shard coordinates it
/// and has loaded it; otherwise the error code to answer with.
pub fn locate(shard: &Shard, id: &str) -> Result<i32, i16> {
    check_transactional_id(id)?;
    let p = partition_for(id);
    let image = shard.metadata.image();
    match image.partition(TRANSACTION_TOPIC, p) {
        None => Err(code(ResponseError::CoordinatorNotAvailable)),
        Some(m) if m.leader != Some(shard.broker()) => Err(code(ResponseError::NotCoordinator)),
        Some(m) if shard.txns.coordinator_epoch(p) != Some(m.leader_epoch.0) => {
            Err(code(ResponseError::CoordinatorLoadInProgress))
        }
        Some(_) => Ok(p),
    }
}

/// [`locate`], and the id's stored state unless a write for it is on its
/// way (`CONCURRENT_TRANSACTIONS`).
fn located(shard: &Shard, id: &str) -> Result<(i32, Option<TxnRecord>), i16> {
    let p = locate(shard, id)?;
    if shard.txns.is_busy(id) {
        return Err(code(ResponseError::ConcurrentTransactions));
    }
    Ok((p, shard.txns.get(id)))
}

/// Writes `record` as `id`'s state, durably on the partition's ISR, then
/// applies it; `was` is the state it replaces, as the caller read it with
/// nothing awaited since. Refused while another write for the id is on
/// its way or if its state changed. A write made durable while the
/// partition was loaded again (a new coordinator epoch) is answered
/// `NOT_COORDINATOR`, as Kafka answers it: whether the load read it is
/// not known, and the client's retry finds out.
async fn transition(
    shard: &Shard,
    p: i32,
    id: &str,
    was: Option<TxnRecord>,
    record: TxnRecord,
) -> Result<(), i16> {
    let ticket = shard.txns.begin(id, was.as_ref(), &record)?;
    let written = write_record(shard, p, ticket.epoch, id, Some(&record)).await;
    let applied = shard.txns.finish(id, ticket, written.is_ok().then_some(record), was);
    match written {
        Ok(()) if !applied => Err(code(ResponseError::NotCoordinator)),
        other => other,
    }
}

/// Forgets `id`, idle past `transactional.id.expiration.ms` in `was`: a
/// tombstone durable on the ISR, then out of memory (Kafka's expiration).
/// Nothing happens if the id moved on meanwhile.
async fn forget(shard: &Shard, p: i32, id: &str, was: TxnRecord) {
    let Ok(ticket) = shard.txns.begin(id, Some(&was), &was) else { return };
    let written = write_record(shard, p, ticket.epoch, id, None).await;
    if written.is_ok() {
        info!("transactional id '{id}': idle since {} ms, forgotten", was.last_update_ms);
        shard.txns.forget(id, ticket);
    } else {
        shard.txns.finish(id, ticket, None, Some(was));
    }
}

/// Appends the record (`None`: a tombstone) at the coordinator epoch (the partition's leader
/// epoch when loaded: a deposed coordinator's write is refused by the log)
/// and waits for the ISR. Failures are answered as Kafka's coordinator
/// answers them, so clients look for the coordinator again.
async fn write_record(
    shard: &Shard,
    p: i32,
    epoch: i32,
    id: &str,
    record: Option<&TxnRecord>,
) -> Result<(), i16> {
    let not_coordinator = code(ResponseError::NotCoordinator);
    let log = shard.partitions.log(TRANSACTION_TOPIC, p).ok_or(not_coordinator)?;
    let (k, v) = (records::key(id), record.map(records::value));
    let batch = engine::batch::build(&[(Some(&k[..]), v.as_deref())], now_ms());
    let info = log.append(BytesMut::from(&batch[..]), epoch).await.map_err(|e| {
        warn!("{TRANSACTION_TOPIC}-{p}: writing the state of '{id}': {e}");
        match e {
            engine::AppendError::Closed | engine::AppendError::Fenced(_) => not_coordinator,
            _ => code(ResponseError::CoordinatorNotAvailable),
        }
    })?;
    crate::groups::wait_committed(&log, info.end_offset, epoch).await.map_err(|c| {
        match ResponseError::try_from_code(c) {
            Some(ResponseError::NotLeaderOrFollower | ResponseError::NotCoordinator) => {
                not_coordinator
            }
            _ => code(ResponseError::CoordinatorNotAvailable),
        }
    })
}

/// InitProducerId for a transactional id: its producer id and new epoch.
pub async fn init_producer_id(
    shard: &Rc<Shard>,
    id: &str,
    timeout_ms: i32,
    expected: (i64, i16),
) -> Result<(i64, i16), i16> {
    let p = locate(shard, id)?;
    let mut fresh = None;
    loop {
        if shard.txns.is_busy(id) {
            return Err(code(ResponseError::ConcurrentTransactions));
        }
        let current = shard.txns.get(id);
        match state::init(current.as_ref(), timeout_ms, expected, fresh, now_ms())? {
            Init::NeedProducerId if current.is_none() && shard.txns.is_full() => {
                return Err(code(ResponseError::CoordinatorNotAvailable));
            }
            Init::NeedProducerId => {
                let next = shard.controller.next_producer_id().await;
                fresh = Some(next.map_err(|_| code(ResponseError::CoordinatorNotAvailable))?);
            }
            Init::Current(pid, epoch) => return Ok((pid, epoch)),
            Init::Write(r) => {
                let answer = (r.producer_id, r.epoch);
                transition(shard, p, id, current, r).await?;
                return Ok(answer);
            }
            Init::AbortFirst(r) => {
                info!("transactional id '{id}': a new producer aborts its open transaction");
                transition(shard, p, id, current, r).await?;
                spawn_completion(shard, id);
                return Err(code(ResponseError::ConcurrentTransactions));
            }
        }
    }
}

pub async fn end_txn(shard: &Rc<Shard>, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: EndTxnRequest = request.decode_body()?;
    let id = req.transactional_id.0.to_string();
    let image = shard.metadata.image();
    let writable =
        context.may(&shard.config, &image, Operation::Write, ResourceType::TransactionalId, &id);
    let outcome = async {
        if !writable {
            return Err(code(ResponseError::TransactionalIdAuthorizationFailed));
        }
        let (p, current) = located(shard, &id)?;
        let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
        match state::end(current.as_ref(), pid, epoch, req.committed, now_ms())? {
            End::Done => Ok(()),
            End::Prepare(r) => {
                transition(shard, p, &id, current, r).await?;
                spawn_completion(shard, &id);
                Ok(())
            }
        }
    };
    let error = outcome.await.err().unwrap_or(0);
    let response = EndTxnResponse::default().with_error_code(fenced_as(error, request.version < 2));
    respond(request, &response)
}

/// v0-v3 (clients) need WRITE on the transactional id and on each topic;
/// v4+ (brokers verifying, KIP-890) CLUSTER_ACTION on the cluster.
pub async fn add_partitions_to_txn(
    shard: &Shard,
    request: &Request,
    context: &ConnContext,
) -> HandlerResult {
    let req: AddPartitionsToTxnRequest = request.decode_body()?;
    let old = request.version < 2;
    if request.version <= 3 {
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(req.v3_and_below_transactional_id.clone())
            .with_producer_id(req.v3_and_below_producer_id)
            .with_producer_epoch(req.v3_and_below_producer_epoch)
            .with_topics(req.v3_and_below_topics.clone());
        let result = add_one(shard, &txn, old, Some(context)).await;
        let response = AddPartitionsToTxnResponse::default()
            .with_results_by_topic_v3_and_below(result.topic_results);
        return respond(request, &response);
    }
    let image = shard.metadata.image();
    if !context.may_on_cluster(&shard.config, &image, Operation::ClusterAction) {
        let code = code(ResponseError::ClusterAuthorizationFailed);
        return respond(request, &AddPartitionsToTxnResponse::default().with_error_code(code));
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for txn in &req.transactions {
        results.push(add_one(shard, txn, false, None).await);
    }
    respond(request, &AddPartitionsToTxnResponse::default().with_results_by_transaction(results))
}

/// One transaction of AddPartitionsToTxn: its partitions added (or, with
/// `verify_only`, checked), one code per partition. `checks`: the client
/// whose WRITE on the id and the topics is checked first.
async fn add_one(
    shard: &Shard,
    txn: &AddPartitionsToTxnTransaction,
    old: bool,
    checks: Option<&ConnContext>,
) -> AddPartitionsToTxnResult {
    let id = txn.transactional_id.0.to_string();
    let image = shard.metadata.image();
    let wanted: Vec<(String, i32)> = txn
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |&p| (t.name.0.to_string(), p)))
        .collect();
    let unknown: BTreeSet<(String, i32)> = wanted
        .iter()
        .filter(|(t, p)| {
            // Clients add internal topics only through AddOffsetsToTxn; a
            // group coordinator's check (`verify_only`) names its
            // `__consumer_offsets` partition.
            let internal = crate::controller::machine::is_internal(t);
            let offsets_check = txn.verify_only && t == OFFSETS_TOPIC;
            image.partition(t, *p).is_none() || internal && !offsets_check
        })
        .cloned()
        .collect();
    let may_write = |resource, name: &str| {
        checks.is_none_or(|c| c.may(&shard.config, &image, Operation::Write, resource, name))
    };
    let denied_topics: BTreeSet<&str> = wanted
        .iter()
        .map(|(t, _)| t.as_str())
        .filter(|t| !may_write(ResourceType::Topic, t))
        .collect();
    let codes: BTreeMap<(String, i32), i16> = if !may_write(ResourceType::TransactionalId, &id) {
        let denied = code(ResponseError::TransactionalIdAuthorizationFailed);
        wanted.iter().map(|tp| (tp.clone(), denied)).collect()
    } else if !denied_topics.is_empty() {
        let not_attempted = code(ResponseError::OperationNotAttempted);
        let denied = code(ResponseError::TopicAuthorizationFailed);
        wanted
            .iter()
            .map(|tp| {
                let c = if denied_topics.contains(tp.0.as_str()) { denied } else { not_attempted };
                (tp.clone(), c)
            })
            .collect()
    } else if !unknown.is_empty() {
        let not_attempted = code(ResponseError::OperationNotAttempted);
        let unknown_code = code(ResponseError::UnknownTopicOrPartition);
        wanted
            .iter()
            .map(|tp| (tp.clone(), if unknown.contains(tp) { unknown_code } else { not_attempted }))
            .collect()
    } else {
        let (pid, epoch) = (txn.producer_id.0, txn.producer_epoch);
        let outcome = if txn.verify_only {
            verify_here(shard, &id, pid, epoch, &wanted)
        } else {
            add_here(shard, &id, pid, epoch, &wanted).await
        };
        let c = fenced_as(outcome.err().unwrap_or(0), old);
        wanted.iter().map(|tp| (tp.clone(), c)).collect()
    };
    let mut by_topic: BTreeMap<&str, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for ((t, p), c) in &codes {
        by_topic.entry(t).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(*p)
                .with_partition_error_code(*c),
        );
    }
    let topic_results = by_topic
        .into_iter()
        .map(|(t, results)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(s(t)))
                .with_results_by_partition(results)
        })
        .collect();
    AddPartitionsToTxnResult::default()
        .with_transactional_id(txn.transactional_id.clone())
        .with_topic_results(topic_results)
}

pub(crate) async fn add_here(
    shard: &Shard,
    id: &str,
    pid: i64,
    epoch: i16,
    wanted: &[(String, i32)],
) -> Result<(), i16> {
    let (p, current) = located(shard, id)?;
    let partitions: BTreeSet<(String, i32)> = wanted.iter().cloned().collect();
    match state::add_partitions(current.as_ref(), pid, epoch, &partitions, now_ms())? {
        None => Ok(()),
        Some(r) => transition(shard, p, id, current, r).await,
    }
}

pub(crate) fn verify_here(
    shard: &Shard,
    id: &str,
    pid: i64,
    epoch: i16,
    wanted: &[(String, i32)],
) -> Result<(), i16> {
    // The stored state, even while a write for the id is on its way (the
    // partition's guard refuses the append if a marker lands meanwhile).
    locate(shard, id)?;
    let current = shard.txns.get(id);
    wanted.iter().try_for_each(|tp| state::verify(current.as_ref(), pid, epoch, tp))
}

/// KIP-890's check before a producer's first transactional batch in a
/// partition (`topic`-`partition`): asks the coordinator of `id`, here or
/// over TCP. The error is the one the produce answers with.
pub async fn verify(
    shard: &Shard,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), i16> {
    let retriable = code(ResponseError::NotEnoughReplicas);
    check_transactional_id(id).map_err(|_| code(ResponseError::InvalidTxnState))?;
    let image = shard.metadata.image();
    let coordinator = image.leader(TRANSACTION_TOPIC, partition_for(id)).ok_or(retriable)?;
    let wanted = [(topic.to_string(), partition)];
    let outcome = if coordinator == shard.broker() {
        verify_here(shard, id, pid, epoch, &wanted)
    } else if let Some(peer) = local_peer(shard, coordinator) {
        drop(image);
        let [partition] = wanted;
        let id = id.to_string();
        local::call(peer, PEER_CALL_LIMIT, |reply| LocalCall::Verify {
            id,
            pid,
            epoch,
            partition,
            reply,
        })
        .await
        .unwrap_or(Err(retriable))
    } else {
        let (host, port) = image.endpoint(coordinator).ok_or(retriable)?;
        let (host, port) = (host.to_string(), port);
        drop(image);
        let txn = AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![partition])]);
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
        let call = async {
            let what = "verifying a transaction with its coordinator";
            let r: AddPartitionsToTxnResponse = shard
                .wires
                .call(
                    &shard.peers,
                    &host,
                    port,
                    ApiKey::AddPartitionsToTxn,
                    4,
                    &req,
                    PEER_CALL_LIMIT,
                    what,
                )
                .await
                .ok()?;
            if r.error_code != 0 {
                return Some(Err(r.error_code));
            }
            let c = r.results_by_transaction.first()?.topic_results.first()?;
            let c = c.results_by_partition.first()?.partition_error_code;
            Some(if c == 0 { Ok(()) } else { Err(c) })
        };
        call.await.unwrap_or(Err(retriable))
    };
    outcome.map_err(|c| match ResponseError::try_from_code(c) {
        Some(ResponseError::ProducerFenced) => code(ResponseError::InvalidProducerEpoch),
        Some(
            ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::ConcurrentTransactions,
        ) => retriable,
        _ => c,
    })
}

/// Completes `id`'s prepared transaction in a task of its own, unless one
/// is at it already.
pub fn spawn_completion(shard: &Rc<Shard>, id: &str) {
    let Some(token) = shard.txns.claim_completion(id) else { return };
    let (shard, id) = (shard.clone(), id.to_string());
    glommio::spawn_local(async move {
        complete(&shard, &id).await;
        shard.txns.release_completion(&id, token);
    })
    .detach();
}

/// Writes the markers of `id`'s prepared transaction to every partition
/// in it (retrying those that fail), then its Complete record.
async fn complete(shard: &Shard, id: &str) {
    let p = partition_for(id);
    let Some(coordinator_epoch) = shard.txns.coordinator_epoch(p) else { return };
    let Some(prepared) = shard.txns.get(id) else { return };
    let commit = match prepared.status {
        TxnStatus::PrepareCommit => true,
        TxnStatus::PrepareAbort => false,
        _ => return,
    };
    let marker =
        Marker { pid: prepared.producer_id, epoch: prepared.epoch, commit, coordinator_epoch };
    let mut pending = prepared.partitions.clone();
    let mut wait = MARKER_RETRY_FIRST;
    // Still this coordinator's, still this transaction: else another
    // coordinator (or task) completes it, and no marker of this one may
    // land in a later transaction of the producer.
    let ours = || {
        !shard.stopping()
            && shard.txns.coordinator_epoch(p) == Some(coordinator_epoch)
            && shard.txns.get(id).as_ref() == Some(&prepared)
    };
    loop {
        if !ours() {
            return;
        }
        match send_markers(shard, &marker, &pending).await {
            Ok(left) => pending = left,
            Err(Fenced) => return,
        }
        if pending.is_empty() {
            if !ours() {
                return;
            }
            let Some(done) = state::complete(&prepared, now_ms()) else { return };
            match transition(shard, p, id, Some(prepared.clone()), done).await {
                Ok(()) => return,
                Err(c) => warn!("transactional id '{id}': completing: error {c}; retrying"),
            }
        }
        glommio::timer::sleep(wait).await;
        wait = (wait * 2).min(MARKER_RETRY_MAX);
    }
}

/// The channel to `broker` if it is another shard of this node.
pub(super) fn local_peer(
    shard: &Shard,
    broker: crate::ids::BrokerId,
) -> Option<&flume::Sender<LocalCall>> {
    let me = shard.broker();
    (broker != me && broker.node() == me.node())
        .then(|| shard.local.get(usize::from(broker.shard().0)))
        .flatten()
}

/// The coordinator's periodic work: aborts transactions past their
/// timeout (fencing their producer) and completes prepared ones no task is
/// completing (after a restart or a failure).
pub async fn tick(shard: &Rc<Shard>) {
    let expiration = i64::try_from(shard.config.transactional_id_expiration_ms).unwrap_or(i64::MAX);
    let due = shard.txns.due(now_ms(), expiration);
    let (expired, stalled) = (due.expired, due.stalled);
    for id in expired {
        let Ok(p) = locate(shard, &id) else { continue };
        // Read again: earlier writes of this loop awaited, and the id may
        // have moved on meanwhile (its producer ended the transaction).
        let current = shard.txns.get(&id);
        let Some(aborted) = current.as_ref().and_then(|c| state::expire(c, now_ms())) else {
            continue;
        };
        info!("transactional id '{id}': open past its timeout, aborted");
        if transition(shard, p, &id, current, aborted).await.is_ok() {
            spawn_completion(shard, &id);
        }
    }
    for id in stalled {
        spawn_completion(shard, &id);
    }
    // Last: forgetting idle ids never delays an abort that holds readers.
    for (id, was) in due.idle {
        let Ok(p) = locate(shard, &id) else { continue };
        forget(shard, p, &id, was).await;
    }
}
