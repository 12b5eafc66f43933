//! Produce v0-v9 (v0-v2's message formats v0 and v1 converted to record
//! batch v2 first, [`engine::legacy`]): appends each partition's batches
//! (all or none per partition) to its log on this shard, in request
//! order, then (in the pipelined phase) waits until every append is
//! acknowledged: acks=1 once the leader holds it durably (under `--flush
//! fsync`), acks=-1 once the high watermark covers it (every ISR member
//! holds it durably; with one replica, the same moment), within the
//! request's `timeout_ms` (`REQUEST_TIMED_OUT` past it: a deposed leader
//! cut off from the others never acknowledges). acks=0 gets no response;
//! if any partition failed, the connection is closed instead, as Kafka
//! does, so the client notices.

use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use engine::disk::DmaDisk;
use engine::AppendError;
use engine::{AppendInfo, Batches, PartitionLog};
use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use net::codec::{DecodeError, Request};
use net::errors::{append_error_code, NONE};
use net::kafka_protocol;

use super::metadata::create_default_topics;
use super::{may_create, respond, HandlerResult, Reply};
use crate::configs::min_insync_replicas;
use crate::context::ConnContext;
use crate::metadata::validate_topic_name;
use crate::quotas::QuotaKind;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

/// Longest an acks=all produce waits for its replicas, whatever its
/// `timeout_ms` asks (Kafka's clients send 30 s).
pub const PRODUCE_WAIT_MAX: Duration = Duration::from_secs(300);

pub async fn handle(shard: &Rc<Shard>, request: &Request, context: &ConnContext) -> Reply {
    let req: ProduceRequest = match request.decode_body() {
        Ok(r) => r,
        Err(e) => return Reply::Now(Err(e)),
    };
    if !matches!(req.acks, -1..=1) {
        let code = ResponseError::InvalidRequiredAcks.code();
        return Reply::Now(respond(request, &uniform_response(&req, code)));
    }
    let config = &shard.config;
    if let Some(id) = &req.transactional_id {
        let image = shard.metadata.image();
        if !context.may(config, &image, Operation::Write, ResourceType::TransactionalId, id) {
            if req.acks == 0 {
                // No response is read: closing is the only answer.
                return Reply::Now(Err(DecodeError::Malformed {
                    api: request.api as i16,
                    version: request.version,
                    reason: "acks=0 produce with a transactional id it may not write".into(),
                }));
            }
            let code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return Reply::Now(respond(request, &uniform_response(&req, code)));
        }
    }
    if shard.config.auto_create_topics {
        let image = shard.metadata.image();
        let mut missing: Vec<String> = req
            .topic_data
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| {
                !image.topics.contains_key(n)
                    && validate_topic_name(n).is_ok()
                    && !n.starts_with("__")
                    && context.may(config, &image, Operation::Write, ResourceType::Topic, n)
                    && may_create(context, config, &image, n)
            })
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            create_default_topics(shard, missing).await;
        }
    }
    let image = shard.metadata.image();
    let min_isr = |topic: &str| {
        image.topics.get(topic).map_or(1, |t| min_insync_replicas(&t.configs, &shard.config))
    };
    // In request order: every partition's append (offsets are assigned here).
    let mut results: Vec<(TopicName, Vec<(i32, Appended)>)> =
        Vec::with_capacity(req.topic_data.len());
    for topic in &req.topic_data {
        let name = topic.name.0.as_str();
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in &topic.partition_data {
            let meta = image.partition(name, p.index);
            // Batches carry the epoch of the leader that appended them.
            let epoch = meta.map_or(0, |m| m.leader_epoch.0);
            let writable = context.may(config, &image, Operation::Write, ResourceType::Topic, name);
            let outcome = match meta.map(|m| m.leader) {
                _ if !writable => {
                    Err(PartitionError::code(ResponseError::TopicAuthorizationFailed.code()))
                }
                // Internal topics are written by the broker only, as in Kafka.
                Some(_) if crate::controller::machine::is_internal(name) => {
                    Err(PartitionError::code(ResponseError::InvalidTopicException.code()))
                }
                None => Err(PartitionError::code(ResponseError::UnknownTopicOrPartition.code())),
                Some(leader) if leader != Some(shard.broker()) => {
                    Err(PartitionError::code(ResponseError::NotLeaderOrFollower.code()))
                }
                // acks=all needs min.insync.replicas in the ISR, checked
                // before the append as Kafka does.
                Some(_) if req.acks == -1 && meta.is_some_and(|m| m.isr.len() < min_isr(name)) => {
                    Err(PartitionError::code(ResponseError::NotEnoughReplicas.code()))
                }
                Some(_) => match (shard.partitions.log(name, p.index), &p.records) {
                    (None, _) => {
                        Err(PartitionError::code(ResponseError::NotLeaderOrFollower.code()))
                    }
                    (Some(_), None) => {
                        Err(PartitionError::code(ResponseError::CorruptMessage.code()))
                    }
                    (Some(log), Some(records)) => {
                        let upconverted;
                        // What the batches' buffer holds beside them.
                        let mut buffer_bytes = request.body.len();
                        let records = match legacy_records(request.version, records, &log) {
                            Ok(None) => records,
                            Ok(Some(batch)) => {
                                upconverted = batch;
                                buffer_bytes = upconverted.len();
                                &upconverted
                            }
                            Err(e) => {
                                let e = AppendError::Batch(e);
                                partitions.push((p.index, Err(PartitionError::of(&e))));
                                continue;
                            }
                        };
                        let batches = batches_of(records, buffer_bytes);
                        let appended = if has_transactional_batch(records) {
                            let tid = req.transactional_id.as_ref().map(|t| t.0.as_str());
                            append_transactional(shard, tid, name, p.index, &log, batches, epoch)
                                .await
                        } else {
                            log.append(batches, epoch).await.map_err(|e| PartitionError::of(&e))
                        };
                        appended.map(|info| {
                            shard.metrics.partition(name, p.index, |c| {
                                c.records_in += (info.end_offset - info.base_offset) as u64;
                                c.bytes_in += records.len() as u64;
                                c.produce_requests += 1;
                            });
                            (log, info, epoch)
                        })
                    }
                },
            };
            partitions.push((p.index, outcome));
        }
        results.push((topic.name.clone(), partitions));
    }
    let failed = results.iter().flat_map(|(_, ps)| ps).any(|(_, o)| o.is_err());
    // producer_byte_rate: the request's bytes, recorded once it is
    // handled (Kafka's order); over the quota, the client is told and its
    // connection muted (an acks=0 client only muted).
    let client_id = request.header.client_id.as_deref().unwrap_or("");
    let throttle = match shard.quota_of(QuotaKind::Produce, context, client_id) {
        Some(quota) => shard.throttle(&quota, request.body.len() as f64, &context.mute),
        None => Duration::ZERO,
    };
    if req.acks == 0 {
        return Reply::Now(if failed {
            Err(DecodeError::Malformed {
                api: request.api as i16,
                version: request.version,
                reason: "acks=0 produce failed on some partition; closing the connection to tell the client".into(),
            })
        } else {
            Ok(None)
        });
    }
    let (request, acks, shard) = (request.clone(), req.acks, shard.clone());
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64).min(PRODUCE_WAIT_MAX);
    Reply::Later(Box::pin(async move {
        respond_when_acked(&shard, &request, acks, timeout, results, throttle).await
    }))
}

/// A partition's batches are appended as the slice of the request they
/// are (no copy: [`Batches::Received`]) when they are at least this share
/// of the buffer holding them, the request's bytes: a cached slice keeps
/// its whole buffer alive, so a cached batch holds at most four times its
/// own size (and the slack of a frame buffer grown past 1 MiB,
/// `net::frame::read_frame_body`), also in an idle partition whose last
/// batches stay cached. Smaller shares (many partitions in one request)
/// are copied, which costs little for batches that small.
const RECEIVED_SHARE_MIN: usize = 4;

/// The batches as the log takes them: see [`RECEIVED_SHARE_MIN`].
fn batches_of(records: &bytes::Bytes, buffer_bytes: usize) -> Batches {
    if records.len().saturating_mul(RECEIVED_SHARE_MIN) >= buffer_bytes {
        Batches::Received(records.clone())
    } else {
        Batches::Owned(BytesMut::from(&records[..]))
    }
}

/// A producer's transactional batches: before the first of its
/// transaction in this partition, the coordinator of `tid` is asked
/// whether the transaction holds the partition (KIP-890); later batches of
/// the same open transaction append at once. Either way the append is
/// refused if a marker of the producer landed meanwhile.
async fn append_transactional(
    shard: &Shard,
    tid: Option<&str>,
    topic: &str,
    partition: i32,
    log: &PartitionLog<DmaDisk>,
    batches: Batches,
    epoch: i32,
) -> Result<AppendInfo, PartitionError> {
    let invalid = |message: &str| PartitionError {
        code: ResponseError::InvalidTxnState.code(),
        message: Some(message.to_string()),
        record_index: None,
    };
    let Some(tid) = tid.filter(|t| !t.is_empty()) else {
        return Err(invalid("transactional batches need the request's transactional id"));
    };
    let Some(h) = one_transactional_producer(&batches) else {
        return Err(invalid("transactional batches of one producer and epoch only, per partition"));
    };
    // The guard holds even without asking: a marker landing while this
    // append waits for room ends the transaction it would join.
    let (open, last_marker) = log.producer_txn(h.producer_id, h.producer_epoch);
    if !open {
        crate::handlers::txn::verify(shard, tid, h.producer_id, h.producer_epoch, topic, partition)
            .await
            .map_err(PartitionError::code)?;
    }
    let check = engine::ProducerCheck::Verified { producer_id: h.producer_id, last_marker };
    log.append_checked(batches, epoch, check).await.map_err(|e| PartitionError::of(&e))
}

/// Produce v0-v2's records in message format v0 or v1 (Kafka before 0.11),
/// as record batches v2 each within the log's largest batch (`None`:
/// already v2, which Kafka 3.9 accepted in any version). The log only
/// holds v2. Current versions pay one comparison here.
fn legacy_records(
    version: i16,
    records: &bytes::Bytes,
    log: &PartitionLog<DmaDisk>,
) -> Result<Option<bytes::Bytes>, engine::batch::BatchError> {
    if version >= 3 || !engine::legacy::is_legacy(records) {
        return Ok(None);
    }
    let max_batch_bytes = log.config().batch_bytes_max();
    engine::legacy::upconvert(records, max_batch_bytes).map(|b| Some(b.into()))
}

/// The first header of `records` if every batch is transactional, of the
/// same producer and epoch (only its first batch is checked with the
/// coordinator, so no other producer may slip in beside it).
fn one_transactional_producer(records: &[u8]) -> Option<engine::batch::BatchHeader> {
    let first = engine::batch::BatchHeader::parse(records)?;
    let mut at = 0;
    while let Some(h) = engine::batch::BatchHeader::parse(&records[at..]) {
        let same = (h.producer_id, h.producer_epoch) == (first.producer_id, first.producer_epoch);
        if !h.is_transactional() || !same {
            return None;
        }
        if h.size < engine::batch::HEADER_BYTES {
            break; // damaged: the append's validation says so
        }
        at = at.saturating_add(h.size).min(records.len());
    }
    Some(first)
}

/// Whether any batch header in `records` has the transactional bit (a
/// walk over headers only; a damaged length ends it, the append's
/// validation reports that).
fn has_transactional_batch(records: &[u8]) -> bool {
    let mut at = 0;
    while let Some(h) = engine::batch::BatchHeader::parse(&records[at..]) {
        if h.is_transactional() {
            return true;
        }
        if h.size < engine::batch::HEADER_BYTES {
            return false;
        }
        at = at.saturating_add(h.size).min(records.len());
    }
    false
}

/// A partition's append: its log, offsets and the leader epoch it was
/// appended under, or why it was refused.
type Appended = Result<(PartitionLog<DmaDisk>, AppendInfo, i32), PartitionError>;

/// A partition's error: its code and, for Produce v8+, Kafka's message and
/// the index of the record at fault (`record_errors`).
struct PartitionError {
    code: i16,
    message: Option<String>,
    record_index: Option<i32>,
}

impl PartitionError {
    fn code(code: i16) -> PartitionError {
        PartitionError { code, message: None, record_index: None }
    }

    fn of(e: &AppendError) -> PartitionError {
        let record_index = match e {
            AppendError::Batch(b) => b.record_index(),
            _ => None,
        };
        PartitionError { code: append_error_code(e), message: Some(e.to_string()), record_index }
    }
}

/// Waits for every partition's acknowledgment together, then answers:
/// acks=1 once the leader's own log has the batches durably, acks=all once
/// the high watermark covers them (every ISR member has them; for a
/// partition of one replica, the same moment) within `timeout`, and the
/// ISR still holds `min.insync.replicas` (Kafka's
/// `NOT_ENOUGH_REPLICAS_AFTER_APPEND` otherwise: the records are in, but
/// on fewer replicas than asked). A leader that loses the partition (or
/// stops) meanwhile answers `NOT_LEADER_OR_FOLLOWER`, as Kafka's delayed
/// produce does: the client retries with the new leader.
async fn respond_when_acked(
    shard: &Shard,
    request: &Request,
    acks: i16,
    timeout: Duration,
    results: Vec<(TopicName, Vec<(i32, Appended)>)>,
    throttle: Duration,
) -> HandlerResult {
    let waits = results.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t, p))).map(
        |(topic, (index, o))| async move {
            let (log, info, epoch) = match o {
                Ok(appended) => appended,
                // Refused at append: the refusal itself is the answer.
                Err(_) => return Ok(()),
            };
            if acks == 1 {
                return log.wait_acked(info.end_offset).await.map_err(|e| PartitionError::of(&e));
            }
            let replicated = wait_replicated(shard, topic.0.as_str(), *index, *epoch, log, info);
            match crate::admission::within(timeout, replicated).await {
                None => Err(PartitionError::code(ResponseError::RequestTimedOut.code())),
                Some(Err(e)) => Err(e),
                Some(Ok(())) => {
                    let image = shard.metadata.image();
                    let (name, min) = (topic.0.as_str(), |t| min_insync_replicas(t, &shard.config));
                    let short = image.topics.get(name).zip(image.partition(name, *index));
                    match short {
                        Some((t, p)) if p.isr.len() < min(&t.configs) => Err(PartitionError::code(
                            ResponseError::NotEnoughReplicasAfterAppend.code(),
                        )),
                        _ => Ok(()),
                    }
                }
            }
        },
    );
    let acked = join_all(waits).await;
    let mut acked = acked.into_iter();
    let version = request.version;
    let responses = results
        .into_iter()
        .map(|(name, partitions)| {
            let partition_responses = partitions
                .into_iter()
                .map(|(index, outcome)| {
                    let ack = acked.next().expect("one per partition");
                    let mut r = PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    match (outcome, ack) {
                        (Ok((log, info, _)), Ok(())) => {
                            r.error_code = NONE;
                            r.base_offset = info.base_offset;
                            // LogAppendTime topics: the time the batches got.
                            r.log_append_time_ms = info.log_append_time;
                            if version >= 5 {
                                r.log_start_offset = log.log_start_offset();
                            }
                        }
                        (Err(refusal), _) | (Ok(_), Err(refusal)) => {
                            r.error_code = refusal.code;
                            if version >= 8 {
                                let message = refusal.message.or_else(|| error_name(refusal.code));
                                r.error_message = message.clone().map(StrBytes::from_string);
                                if let Some(index) = refusal.record_index {
                                    r.record_errors = vec![BatchIndexAndErrorMessage::default()
                                        .with_batch_index(index)
                                        .with_batch_index_error_message(
                                            message.map(StrBytes::from_string),
                                        )];
                                }
                            }
                        }
                    }
                    r
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    let mut response = ProduceResponse::default().with_responses(responses);
    // v0 has no field for it: such a client is only muted.
    if request.version >= 1 {
        response.throttle_time_ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
    }
    respond(request, &response)
}

/// Waits until the high watermark covers `info`'s batches while this
/// shard leads the partition at `epoch`: the log's role says so the moment
/// it changes ([`PartitionLog::wait_replicated`]); the image, installed a
/// moment after the roles, can only agree or lag (a replica deposed
/// meanwhile may have cut the batches and fetched others at their
/// offsets; Kafka's delayed produce checks its leadership as it
/// completes, too).
async fn wait_replicated(
    shard: &Shard,
    topic: &str,
    index: i32,
    epoch: i32,
    log: &PartitionLog<DmaDisk>,
    info: &AppendInfo,
) -> Result<(), PartitionError> {
    let leads = || {
        let image = shard.metadata.image();
        image
            .partition(topic, index)
            .is_some_and(|p| p.leader == Some(shard.broker()) && p.leader_epoch.0 == epoch)
            && !shard.stopping()
    };
    let deposed = || PartitionError::code(ResponseError::NotLeaderOrFollower.code());
    if !leads() {
        return Err(deposed());
    }
    let covered = async { Some(log.wait_replicated(info.end_offset, epoch).await) };
    let stopped = async {
        shard.stopped().await;
        None
    };
    match futures_lite::future::or(covered, stopped).await {
        Some(Ok(())) if leads() => Ok(()),
        Some(Ok(())) | Some(Err(AppendError::Fenced(_))) | None => Err(deposed()),
        Some(Err(e)) => Err(PartitionError::of(&e)),
    }
}

fn error_name(code: i16) -> Option<String> {
    let e = ResponseError::try_from_code(code)?;
    Some(format!("{e:?}"))
}

fn uniform_response(req: &ProduceRequest, code: i16) -> ProduceResponse {
    let responses = req
        .topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default().with_name(t.name.clone()).with_partition_responses(
                t.partition_data
                    .iter()
                    .map(|p| {
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(code)
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                    })
                    .collect(),
            )
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
