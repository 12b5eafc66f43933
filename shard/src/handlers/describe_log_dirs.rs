//! DescribeLogDirs v1-v4 (`kafka-log-dirs.sh`, admin UIs): the partitions
//! this shard holds (leading or following), each with its size on disk
//! and how far its log end is behind its high watermark, in the node's one
//! log directory, with the file system's total and free bytes (v4).
//!
//! The shard answers for its own replicas only, as a Kafka broker does
//! for its own; the node's other shards are other brokers.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use super::{respond, HandlerResult};
use crate::context::ConnContext;
use crate::shard::Shard;
use auth::acl::Operation;
use kafka_protocol::error::ResponseError;

pub fn handle(shard: &Shard, request: &Request, context: &ConnContext) -> HandlerResult {
    let req: DescribeLogDirsRequest = request.decode_body()?;
    let image = shard.metadata.image();
    if !context.may_on_cluster(&shard.config, &image, Operation::Describe) {
        // Kafka's answer: v3+ say why; earlier versions list nothing.
        let mut response = DescribeLogDirsResponse::default();
        if request.version >= 3 {
            response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        }
        return respond(request, &response);
    }
    // Null asks for every partition; otherwise those named that are here.
    let wanted = |topic: &str, index: i32| {
        req.topics.as_ref().is_none_or(|ts| {
            ts.iter().any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&index))
        })
    };
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in shard.partitions.all() {
        if !wanted(&p.topic, p.index) {
            continue;
        }
        let lag = (p.log.high_watermark() - p.log.log_end_offset()).max(0);
        topics.entry(p.topic.to_string()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(p.log.size_bytes() as i64)
                .with_offset_lag(lag)
                .with_is_future_key(false),
        );
    }
    let dir = &shard.config.data_dir;
    let (total, usable) = space(dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_total_bytes(total)
        .with_usable_bytes(usable)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    respond(request, &DescribeLogDirsResponse::default().with_results(vec![result]))
}

/// Total and available bytes of the file system holding `dir`
/// (`statvfs(3)`), for v4's `total_bytes` and `usable_bytes`.
fn space(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; all zeroes is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let block = st.f_frsize as i64;
    Some((st.f_blocks as i64 * block, st.f_bavail as i64 * block))
}
