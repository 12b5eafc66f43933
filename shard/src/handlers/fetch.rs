//! Fetch v0-v16 (topics by id from v13; v0-v3 in message formats v0 and
//! v1, converted from the log's batches, [`LEGACY_BELOW`]): whole batches
//! from each partition's log on this shard, at most `partition_max_bytes`
//! per partition and `max_bytes` in all (but at least one batch, KIP-74),
//! up to the high watermark (the acknowledged end), or under
//! read_committed up to the last stable offset, with the aborted
//! transactions the batches read overlap.
//! Below `min_bytes` the request waits, up to `max_wait_ms`, for any of its
//! partitions to grow. No fetch sessions: `session_id` is always 0, so
//! clients send full fetches.
//!
//! Followers' fetches (`replica_id` set) read up to the leader's durable
//! end and report the follower's progress. From v11 a consumer may read
//! from a follower's replica too, up to that replica's high watermark
//! (KIP-392), and the leader sends a consumer whose rack (`rack_id`, a
//! node's rack) holds an ISR member to that member.
//!
//! Hot data (the shard's batch cache) is sent from memory. Cold data (file
//! ranges of whole, acknowledged batches) is spliced from the segment file
//! to the socket when the shard has a side ring ([`crate::splice`]): the
//! response is encoded with a unique 16-byte marker as each such
//! partition's records, then cut at the markers into parts, the records'
//! length prefixes and the frame size rewritten for the real lengths.
//! Without a side ring, cold data is read into memory and every batch's
//! CRC checked before it is sent.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use engine::ReadChunk;
use futures_util::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use net::codec::{DecodeError, Request};
use net::errors::log_error_code;
use net::kafka_protocol;

use super::{held_log, respond, HandlerResult, Out, Part};
use crate::context::ConnContext;
use crate::shard::Shard;
use auth::acl::{Operation, ResourceType};

/// Longest wait a fetch may ask for; Kafka clients use 500 ms by default.
pub const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);

/// Largest fetch response, whatever `max_bytes` asks (0 or negative asks
/// for no limit): Kafka's broker config `fetch.max.bytes`, 55 MiB. A
/// response is held whole until sent, so this bounds a fetch's memory.
pub const FETCH_RESPONSE_BYTES_MAX: usize = 55 * 1024 * 1024;

/// `context`: the client's, when the authorizer is on (else `None`: all
/// is allowed, and the hot path clones nothing). `client`: what else the
/// fetch needs of its connection.
pub async fn handle(
    shard: &Shard,
    request: &Request,
    context: Option<&ConnContext>,
    client: FetchClient,
) -> HandlerResult {
    let mut req: FetchRequest = request.decode_body()?;
    let legacy = request.version < LEGACY_BELOW;
    let splice = client.zero_copy && shard.splicer.is_some() && !legacy;
    let replica =
        if request.version <= 14 { req.replica_id.0 } else { req.replica_state.replica_id.0 };
    // consumer_byte_rate: a consumer's, never a follower's (replication
    // is not a client's read). A client already over its quota is answered
    // at once, empty, with the time until it is back under; else it gets
    // its records (at most ten windows of the quota, Kafka's bound) and,
    // if they take it over, the throttle time with them (decision 49).
    let quota = client.quota.filter(|_| replica < 0);
    if let Some(quota) = &quota {
        let over = shard.over_quota(quota, &client.mute);
        if !over.is_zero() {
            let mut empty = FetchResponse::default();
            if request.version >= 1 {
                empty.throttle_time_ms = i32::try_from(over.as_millis()).unwrap_or(i32::MAX);
            }
            return respond(request, &empty);
        }
        let most = crate::quotas::ShardQuotas::fetch_bytes_max(quota.0) as i32;
        req.max_bytes = if req.max_bytes > 0 { req.max_bytes.min(most) } else { most };
    }
    let mut denied = Vec::new();
    if let Some(context) = context {
        denied = authorize(shard, &mut req, request.version, context);
        if req.topics.is_empty() && !denied.is_empty() {
            // Nothing left to read: answered at once, as Kafka does.
            let response = FetchResponse::default().with_responses(denied);
            return respond(request, &response);
        }
    }
    let (mut response, spliced, total) = serve(shard, &req, request.version, splice).await;
    if let Some(quota) = &quota {
        let throttle = shard.throttle(quota, total as f64, &client.mute);
        if request.version >= 1 {
            response.throttle_time_ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
        }
    }
    response.responses.extend(denied);
    if legacy {
        downconvert(&req, &mut response, request.version);
    }
    respond_spliced(request, &response, spliced)
}

/// What a fetch needs of its connection beside the authorizer's context.
pub struct FetchClient {
    /// The connection takes spliced data (not TLS in user space).
    pub zero_copy: bool,
    /// The consumer_byte_rate quota of its client, if one applies.
    pub quota: Option<crate::quotas::Quota>,
    pub mute: crate::context::Mute,
}

/// Kafka's checks: a follower's fetch needs CLUSTER_ACTION on the cluster,
/// a consumer's READ on each topic; what is not allowed leaves the request
/// and comes back as TOPIC_AUTHORIZATION_FAILED partitions.
fn authorize(
    shard: &Shard,
    req: &mut FetchRequest,
    version: i16,
    context: &ConnContext,
) -> Vec<FetchableTopicResponse> {
    let image = shard.metadata.image();
    let config = &shard.config;
    let replica = if version <= 14 { req.replica_id.0 } else { req.replica_state.replica_id.0 };
    let denied_code = ResponseError::TopicAuthorizationFailed.code();
    if replica >= 0 {
        if context.may_on_cluster(config, &image, Operation::ClusterAction) {
            return Vec::new();
        }
        return std::mem::take(&mut req.topics)
            .iter()
            .map(|t| denied_topic(t, denied_code))
            .collect();
    }
    let mut denied = Vec::new();
    req.topics.retain(|t| {
        // An unknown topic id is answered as such by the read.
        let Some(name) = topic_name(&image, t, version) else { return true };
        let readable = context.may(config, &image, Operation::Read, ResourceType::Topic, &name);
        if !readable {
            denied.push(denied_topic(t, denied_code));
        }
        readable
    });
    denied
}

/// A topic of the request answered `code` on each of its partitions.
fn denied_topic(
    t: &kafka_protocol::messages::fetch_request::FetchTopic,
    code: i16,
) -> FetchableTopicResponse {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            PartitionData::default()
                .with_partition_index(p.partition)
                .with_error_code(code)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()))
        })
        .collect();
    FetchableTopicResponse::default()
        .with_topic(t.topic.clone())
        .with_topic_id(t.topic_id)
        .with_partitions(partitions)
}

/// Fetch v0-v3 carry message formats v0 (v0-v1) and v1 (v2-v3), not
/// record batches: their records are read into memory and converted
/// ([`engine::legacy::downconvert`]), never spliced.
const LEGACY_BELOW: i16 = 4;

/// Rewrites every partition's batches in the message format of `version`,
/// each partition within its `partition_max_bytes` and all within the
/// response's limit (the conversion may grow them: compressed batches come
/// out uncompressed), but at least one record while the limit is not
/// reached, as Kafka bounds its down-conversion.
fn downconvert(req: &FetchRequest, response: &mut FetchResponse, version: i16) {
    let magic = if version <= 1 { 0 } else { 1 };
    let mut left = match usize::try_from(req.max_bytes) {
        Ok(n) if n > 0 => n.min(FETCH_RESPONSE_BYTES_MAX),
        _ => FETCH_RESPONSE_BYTES_MAX,
    };
    // What each partition asked: its fetch offset and byte limit (the
    // first entry of a partition named twice, as the read took it).
    let mut asked: HashMap<(&str, i32), (i64, usize)> = HashMap::new();
    for t in &req.topics {
        for q in &t.partitions {
            let limit = q.partition_max_bytes.max(0) as usize;
            asked.entry((t.topic.0.as_str(), q.partition)).or_insert((q.fetch_offset, limit));
        }
    }
    for t in &mut response.responses {
        for p in &mut t.partitions {
            let key = (t.topic.0.as_str(), p.partition_index);
            let (from, max) = asked.get(&key).copied().unwrap_or((i64::MAX, 0));
            if let Some(records) = p.records.as_mut().filter(|r| !r.is_empty()) {
                let set = match left {
                    0 => Vec::new(),
                    _ => engine::legacy::downconvert(records, from, magic, max.min(left)),
                };
                left = left.saturating_sub(set.len());
                *records = set.into();
            }
        }
    }
}

/// A follower's fetch from another shard of this node
/// ([`crate::local`]): answered as over TCP, records in memory.
pub async fn serve_local(shard: &Shard, req: &FetchRequest, version: i16) -> FetchResponse {
    serve(shard, req, version, false).await.0
}

/// Reads (and long-polls) a decoded fetch; cold records come as file
/// ranges to splice when `splice` is set, else in memory.
async fn serve(
    shard: &Shard,
    req: &FetchRequest,
    version: i16,
    splice: bool,
) -> (FetchResponse, Vec<Spliced>, usize) {
    let deadline =
        Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
    let max_bytes = match usize::try_from(req.max_bytes) {
        Ok(n) if n > 0 => n.min(FETCH_RESPONSE_BYTES_MAX),
        _ => FETCH_RESPONSE_BYTES_MAX,
    };
    // A follower's fetch (Kafka's replica fetchers set `replica_id`):
    // it reads up to the leader's durable end, not the high watermark, and
    // its fetch offset is the follower's durable end.
    let replica = match version {
        ..=14 => req.replica_id.0,
        _ => req.replica_state.replica_id.0,
    };
    let replica = (replica >= 0).then_some(crate::ids::BrokerId(replica));
    loop {
        let (response, total, spliced, reads) =
            read_all(shard, req, version, max_bytes, replica, splice).await;
        let now = Instant::now();
        // A partition in error (or a follower's that diverged, or one to
        // read from another replica) is answered at once, as Kafka's
        // delayed fetch does.
        let failed = response.responses.iter().flat_map(|t| &t.partitions).any(|p| {
            p.error_code != 0
                || p.diverging_epoch.end_offset >= 0
                || p.preferred_read_replica.0 >= 0
        });
        let enough = total >= req.min_bytes.max(1) as usize;
        if enough || failed || now >= deadline || shard.stopping() {
            // Client traffic only: replication is not a consumer's read.
            for (topic, partition, bytes) in reads.into_iter().filter(|_| replica.is_none()) {
                shard.metrics.partition(&topic, partition, |c| {
                    c.fetch_requests += 1;
                    c.bytes_out += bytes;
                });
            }
            return (response, spliced, total);
        }
        // Wait for any partition to grow past its fetch offset, or the deadline.
        let mut waits: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>> =
            Vec::new();
        let image = shard.metadata.image();
        for t in &req.topics {
            let Some(name) = topic_name(&image, t, version) else { continue };
            for p in &t.partitions {
                if let Some(log) = shard.partitions.log(&name, p.partition) {
                    // New data past what was just read: waiting for the fetch
                    // offset alone would return at once when data is there
                    // but fewer than min_bytes, and spin until the deadline.
                    if log.failure().is_some() {
                        continue;
                    }
                    if replica.is_some() {
                        let offset = p.fetch_offset.max(log.acked_end_offset());
                        waits.push(Box::pin(async move { log.wait_acked_past(offset).await }));
                    } else {
                        let offset = p.fetch_offset.max(log.high_watermark());
                        waits.push(Box::pin(
                            async move { log.wait_high_watermark_past(offset).await },
                        ));
                    }
                }
            }
        }
        waits.push(Box::pin(glommio::timer::sleep(deadline - now)));
        // A stopping broker answers long polls at once.
        waits.push(Box::pin(shard.stopped()));
        select_all(waits).await;
    }
}

async fn read_all(
    shard: &Shard,
    req: &FetchRequest,
    version: i16,
    max_bytes: usize,
    replica: Option<crate::ids::BrokerId>,
    splice: bool,
) -> (FetchResponse, usize, Vec<Spliced>, Vec<PartitionRead>) {
    let image = shard.metadata.image();
    let mut reads = Vec::new();
    let mut total = 0usize;
    let mut spliced = Vec::new();
    let mut responses = Vec::with_capacity(req.topics.len());
    // KIP-392: a consumer's fetch (v11+, which names the client's rack)
    // may read from a follower, and the leader sends a client in another
    // follower's rack to that follower.
    let from_followers = replica.is_none() && version >= 11;
    // read_committed (isolation_level 1) reads below the last stable
    // offset and is told which transactions in what it read were aborted.
    let committed = replica.is_none() && req.isolation_level == 1;
    let rack = req.rack_id.as_str();
    for t in &req.topics {
        let name = topic_name(&image, t, version);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(p.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()));
            let log = match name.as_deref() {
                None => Err(ResponseError::UnknownTopicId),
                Some(n) => {
                    let epoch = p.current_leader_epoch;
                    held_log(shard, &image, n, p.partition, epoch, from_followers)
                }
            };
            let elsewhere = match (&log, name.as_deref()) {
                (Ok(_), Some(n)) if from_followers && !rack.is_empty() => {
                    read_replica(shard, &image, n, p.partition, rack, p.fetch_offset)
                }
                _ => None,
            };
            if let (Ok(log), Some(follower)) = (&log, elsewhere) {
                data.preferred_read_replica = BrokerId(follower.0);
                data.high_watermark = log.high_watermark();
                data.last_stable_offset = log.last_stable_offset();
                data.log_start_offset = log.log_start_offset();
                partitions.push(data);
                continue;
            }
            // A follower's fetch: first whether its log diverged from this
            // one, then its progress.
            let log = match (log, replica, name.as_deref()) {
                (Ok(log), Some(follower), Some(n)) => {
                    match follower_check(shard, &image, &log, n, p, version, follower) {
                        Ok(()) => Ok(log),
                        Err(Diverged { epoch, end_offset }) => {
                            data.diverging_epoch.epoch = epoch;
                            data.diverging_epoch.end_offset = end_offset;
                            data.high_watermark = log.high_watermark();
                            data.log_start_offset = log.log_start_offset();
                            partitions.push(data);
                            continue;
                        }
                        Err(Refused(e)) => {
                            data.high_watermark = log.high_watermark();
                            data.log_start_offset = log.log_start_offset();
                            Err(e)
                        }
                    }
                }
                (log, _, _) => log,
            };
            match log {
                Err(e) => data.error_code = e.code(),
                Ok(log) => {
                    let high_watermark = log.high_watermark();
                    let last_stable = log.last_stable_offset();
                    data.high_watermark = high_watermark;
                    data.last_stable_offset = last_stable;
                    // Followers read what this leader holds durably.
                    let upper = match replica {
                        Some(_) => log.acked_end_offset(),
                        None if committed => last_stable,
                        None => high_watermark,
                    };
                    if version >= 5 {
                        data.log_start_offset = log.log_start_offset();
                    }
                    data.aborted_transactions = Some(Vec::new());
                    let room = max_bytes.saturating_sub(total);
                    let limit = (p.partition_max_bytes.max(0) as usize).min(room);
                    // Past the response's max_bytes only the first partition
                    // with data may still return one batch (KIP-74).
                    if limit > 0 || total == 0 {
                        let read =
                            read_partition(&log, p.fetch_offset, limit.max(1), upper, splice).await;
                        let bytes_out = match &read {
                            Ok((Records::Bytes(b), _)) => b.len(),
                            Ok((Records::Spliced(s), _)) => s.len,
                            Err(_) => 0,
                        };
                        let read = match read {
                            Ok((records, upper_bound)) if committed && bytes_out > 0 => {
                                aborted_in(&log, p.fetch_offset, upper_bound).await.map(|list| {
                                    data.aborted_transactions = Some(list);
                                    records
                                })
                            }
                            other => other.map(|(records, _)| records),
                        };
                        if let Some(name) = &name {
                            reads.push((name.clone(), p.partition, bytes_out as u64));
                        }
                        match read {
                            Ok(Records::Bytes(bytes)) => {
                                total += bytes.len();
                                data.records = Some(bytes);
                            }
                            Ok(Records::Spliced(s)) => {
                                total += s.len;
                                data.records = Some(Bytes::copy_from_slice(&s.marker));
                                spliced.push(s);
                            }
                            Err(code) => data.error_code = code,
                        }
                    }
                }
            }
            partitions.push(data);
        }
        // From v13 topics are named by id only (the codec refuses the name).
        let mut topic = FetchableTopicResponse::default().with_partitions(partitions);
        if version >= 13 {
            topic.topic_id = t.topic_id;
        } else {
            topic.topic = t.topic.clone();
        }
        responses.push(topic);
    }
    (FetchResponse::default().with_responses(responses), total, spliced, reads)
}

/// Why a follower's fetch of a partition reads nothing.
enum FollowerRefusal {
    /// Its log diverged from the leader's at this epoch's end (KIP-320):
    /// it truncates there first.
    Diverged {
        epoch: i32,
        end_offset: i64,
    },
    Refused(ResponseError),
}
use FollowerRefusal::{Diverged, Refused};

/// Checks a follower's fetch of `name`-`p.partition`, led here: the epoch
/// of its last batch must end here no earlier than its fetch offset (from
/// v12, which carries that epoch); then its fetch offset is recorded as
/// its durable end.
fn follower_check(
    shard: &Shard,
    image: &crate::metadata::MetadataImage,
    log: &engine::PartitionLog<engine::disk::DmaDisk>,
    name: &str,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    version: i16,
    follower: crate::ids::BrokerId,
) -> Result<(), FollowerRefusal> {
    // Elected while its own log is being cut: what a follower would count
    // as held may be going. It asks again in a moment.
    if log.is_truncating() {
        return Err(Refused(ResponseError::NotLeaderOrFollower));
    }
    if version >= 12 && p.last_fetched_epoch >= 0 {
        let (epoch, end_offset) = log.end_offset_for_epoch(p.last_fetched_epoch);
        // No end known for the follower's epoch (newer than any here):
        // Kafka answers OFFSET_OUT_OF_RANGE. An undefined diverging epoch
        // would read as none, and the follower would fetch the same offset
        // forever, never counted.
        if epoch < 0 || end_offset < 0 {
            return Err(Refused(ResponseError::OffsetOutOfRange));
        }
        if epoch != p.last_fetched_epoch || end_offset < p.fetch_offset {
            return Err(Diverged { epoch, end_offset });
        }
    }
    let id = shard
        .partitions
        .id(name, p.partition)
        .ok_or(Refused(ResponseError::NotLeaderOrFollower))?;
    shard
        .replicas
        .follower_fetched(id, follower, p.fetch_offset, p.log_start_offset, image)
        .map_err(Refused)
}

/// The replica a consumer in `rack` should read `topic`-`index` from
/// instead of this shard, which leads it: a live ISR member in that rack
/// (a node) holding `offset` durably, unless this shard is in that rack.
fn read_replica(
    shard: &Shard,
    image: &crate::metadata::MetadataImage,
    topic: &str,
    index: i32,
    rack: &str,
    offset: i64,
) -> Option<crate::ids::BrokerId> {
    let me = shard.broker();
    let meta = image.partition(topic, index).filter(|m| m.leader == Some(me))?;
    let rack_of = |b: crate::ids::BrokerId| image.nodes.get(&b.node()).map(|n| n.rack.as_str());
    if rack_of(me) == Some(rack) {
        return None;
    }
    let id = shard.partitions.id(topic, index)?;
    meta.isr.iter().copied().find(|&b| {
        b != me
            && rack_of(b) == Some(rack)
            && image.is_live(b)
            && shard.replicas.follower_end(id, b).is_some_and(|end| end >= offset)
    })
}

/// A partition a fetch read: (topic, partition, record bytes), counted in
/// the metrics once the response is final.
type PartitionRead = (String, i32, u64);

/// The name of a requested topic: by name before v13, by id from v13.
/// `None` for an id that names no topic (`UNKNOWN_TOPIC_ID`).
fn topic_name(
    image: &crate::metadata::MetadataImage,
    t: &kafka_protocol::messages::fetch_request::FetchTopic,
    version: i16,
) -> Option<String> {
    if version >= 13 {
        image.topic_by_id(t.topic_id.as_bytes()).map(|m| m.name.clone())
    } else {
        Some(t.topic.0.to_string())
    }
}

/// A partition's records as a response carries them.
enum Records {
    /// In memory: the cache's, or cold data read and CRC-checked.
    Bytes(Bytes),
    /// Sent in parts, file ranges spliced; `marker` stands in the encoding.
    Spliced(Spliced),
}

struct Spliced {
    marker: [u8; MARKER_BYTES],
    parts: Vec<Part>,
    len: usize,
}

/// Length of the stand-in for spliced records: 16 random bytes, which
/// nothing else in a response repeats by chance.
const MARKER_BYTES: usize = 16;

/// The aborted transactions a read_committed read of `[from, upper)`
/// overlaps, as the response lists them.
async fn aborted_in(
    log: &engine::PartitionLog<engine::disk::DmaDisk>,
    from: i64,
    upper: i64,
) -> Result<Vec<AbortedTransaction>, i16> {
    let list = log.aborted_transactions(from, upper).await.map_err(|e| log_error_code(&e))?;
    Ok(list
        .into_iter()
        .map(|a| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(a.producer_id))
                .with_first_offset(a.first_offset)
        })
        .collect())
}

/// Reads a partition's records, and an offset at or past the end of what
/// was read (see `ReadResult::upper_bound`).
async fn read_partition(
    log: &engine::PartitionLog<engine::disk::DmaDisk>,
    offset: i64,
    max_bytes: usize,
    upper: i64,
    splice: bool,
) -> Result<(Records, i64), i16> {
    let read = log.read(offset, max_bytes, upper).await.map_err(|e| log_error_code(&e))?;
    let upper_bound = read.upper_bound;
    let cold = read.chunks.iter().any(|c| matches!(c, ReadChunk::File { .. }));
    if cold && splice {
        let parts = read
            .chunks
            .into_iter()
            .map(|c| match c {
                ReadChunk::Memory(b) => Part::Bytes(b),
                ReadChunk::File { file, position, len, .. } => Part::File { file, position, len },
            })
            .collect();
        let marker = *uuid::Uuid::new_v4().as_bytes();
        return Ok((Records::Spliced(Spliced { marker, parts, len: read.bytes }), upper_bound));
    }
    if read.chunks.len() == 1 {
        return log
            .read_bytes(&read.chunks[0])
            .await
            .map(|b| (Records::Bytes(b), upper_bound))
            .map_err(|e| log_error_code(&e));
    }
    let mut out = BytesMut::with_capacity(read.bytes);
    for chunk in &read.chunks {
        out.extend_from_slice(&log.read_bytes(chunk).await.map_err(|e| log_error_code(&e))?);
    }
    Ok((Records::Bytes(out.freeze()), upper_bound))
}

/// The response frame, in parts when some records are spliced.
fn respond_spliced(
    request: &Request,
    response: &FetchResponse,
    spliced: Vec<Spliced>,
) -> HandlerResult {
    let frame = match respond(request, response)? {
        Some(Out::Frame(frame)) if !spliced.is_empty() => frame,
        other => return Ok(other),
    };
    assemble(frame, request.version >= FLEXIBLE_FROM, spliced)
        .map(|parts| Some(Out::Parts(parts)))
        .map_err(|reason| DecodeError::Malformed {
            api: request.api as i16,
            version: request.version,
            reason,
        })
}

/// Fetch is a flexible version (compact records length) from v12.
const FLEXIBLE_FROM: i16 = 12;

/// Cuts an encoded response frame at each marker (in encoding order) and
/// puts the marker's parts in its place, with the records length prefix
/// and the frame's size rewritten for the real lengths.
fn assemble(frame: Bytes, flexible: bool, spliced: Vec<Spliced>) -> Result<Vec<Part>, String> {
    // The marker's own length prefix, as the encoder wrote it.
    let marker_prefix: Vec<u8> = if flexible {
        varint(MARKER_BYTES as u64 + 1)
    } else {
        (MARKER_BYTES as i32).to_be_bytes().to_vec()
    };
    let mut parts = Vec::with_capacity(spliced.len() * 3 + 1);
    let mut at = 0usize;
    let mut size_delta = 0i64;
    for s in spliced {
        let found = frame[at..]
            .windows(MARKER_BYTES)
            .position(|w| w == s.marker)
            .map(|i| i + at)
            .ok_or("spliced records marker missing from the encoded response")?;
        let prefix_at = found.checked_sub(marker_prefix.len()).ok_or("marker without a prefix")?;
        if frame[prefix_at..found] != marker_prefix[..] {
            return Err("unexpected records length prefix before a marker".into());
        }
        let prefix = if flexible {
            varint(s.len as u64 + 1)
        } else {
            i32::try_from(s.len).map_err(|_| "records too long")?.to_be_bytes().to_vec()
        };
        size_delta +=
            prefix.len() as i64 - marker_prefix.len() as i64 + s.len as i64 - MARKER_BYTES as i64;
        parts.push(Part::Bytes(frame.slice(at..prefix_at)));
        parts.push(Part::Bytes(Bytes::from(prefix)));
        parts.extend(s.parts);
        at = found + MARKER_BYTES;
    }
    parts.push(Part::Bytes(frame.slice(at..)));
    // The frame size prefix is the first four bytes of the first part.
    let Some(Part::Bytes(head)) = parts.first_mut() else { unreachable!("pushed first") };
    if head.len() < 4 {
        return Err("response frame without a size".into());
    }
    let size = i32::from_be_bytes(head[..4].try_into().expect("4 bytes")) as i64 + size_delta;
    let size = i32::try_from(size).map_err(|_| "response frame too large")?;
    let mut patched = BytesMut::from(&head[..]);
    patched[..4].copy_from_slice(&size.to_be_bytes());
    *head = patched.freeze();
    Ok(parts)
}

/// An unsigned varint, as compact lengths are encoded.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, ResponseHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    /// A response with `records` as the records of three partitions.
    fn response(records: [&Bytes; 3]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some((*r).clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(kafka_protocol::messages::TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions)])
    }

    fn frame(version: i16, body: &FetchResponse) -> Bytes {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        ResponseHeader::default()
            .with_correlation_id(7)
            .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.freeze()
    }

    #[test]
    fn parts_make_the_frame_the_records_would_have_made() {
        // Sizes around the varint boundaries of compact lengths.
        let sizes = [(0, 200, 1), (127, 128, 20_000), (16, 3, 70_000)];
        for version in 4..=16 {
            for (a, b, c) in sizes {
                let records: Vec<Bytes> =
                    [a, b, c].iter().map(|&n| Bytes::from(vec![n as u8 ^ 0x5a; n])).collect();
                let whole = frame(version, &response([&records[0], &records[1], &records[2]]));
                // Partition 1 in memory, 0 and 2 spliced (as two parts each).
                let markers = [[1u8; 16], [2u8; 16]];
                let marked = [
                    Bytes::copy_from_slice(&markers[0]),
                    records[1].clone(),
                    Bytes::copy_from_slice(&markers[1]),
                ];
                let encoded = frame(version, &response([&marked[0], &marked[1], &marked[2]]));
                let spliced = [0usize, 2]
                    .iter()
                    .zip(markers)
                    .map(|(&i, marker)| {
                        let r = &records[i];
                        let half = r.len() / 2;
                        Spliced {
                            marker,
                            parts: vec![Part::Bytes(r.slice(..half)), Part::Bytes(r.slice(half..))],
                            len: r.len(),
                        }
                    })
                    .collect();
                let parts = assemble(encoded, version >= FLEXIBLE_FROM, spliced).unwrap();
                let mut joined = Vec::new();
                for p in parts {
                    match p {
                        Part::Bytes(b) => joined.extend_from_slice(&b),
                        Part::File { .. } => unreachable!(),
                    }
                }
                assert_eq!(joined, whole.to_vec(), "v{version}, sizes {a} {b} {c}");
            }
        }
    }

    #[test]
    fn a_missing_marker_is_an_error_not_a_wrong_frame() {
        let encoded = frame(12, &response([&Bytes::new(), &Bytes::new(), &Bytes::new()]));
        let lost = Spliced { marker: [9; 16], parts: Vec::new(), len: 0 };
        assert!(assemble(encoded, true, vec![lost]).is_err());
    }
}
