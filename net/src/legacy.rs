//! The request versions Kafka 3.9 served and Kafka 4.0 dropped (KIP-896),
//! which the codec generated from Kafka 4.0's schemas no longer knows:
//! Produce v0-v2, Fetch v0-v3, ListOffsets v0, CreateTopics v0-v1,
//! DeleteTopics v0, DescribeConfigs v0, OffsetCommit v0-v1, OffsetFetch
//! v0, OffsetForLeaderEpoch v0-v1 and DescribeLogDirs v0, as clients that
//! never negotiate versions send them (Debian's Sarama 1.22, kafka-go
//! 0.2.1, Burrow 1.2.1; librdkafka with `api.version.request=false`), and
//! WriteTxnMarkers v0 (v1 made flexible, with its headers: [`header_versions`]).
//!
//! Each is rewritten, bytes to bytes, into the oldest version the codec
//! knows ([`upgrade`]), with the fields the old one lacks at the values
//! Kafka gives them; the handlers then see the request's own version in
//! [`crate::codec::Request::version`] and decide by it what differs beyond
//! the layout (the records' format in Produce and Fetch, ListOffsets v0's
//! offset list). The response, encoded in that oldest version, is rewritten
//! back into the old layout ([`downgrade`]). Every old layout here is
//! Kafka's non-flexible one: integers big-endian, strings `i16` length +
//! UTF-8, bytes and arrays `i32` length (-1: null); the one flexible
//! layout rewritten (WriteTxnMarkers v1) has compact lengths (unsigned
//! varint, length + 1) and a tag buffer closing each structure.
//!
//! Pure functions of the bytes, bounded by them; a body that does not
//! parse is an error, never a panic.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

/// The oldest version the codec knows for `api`, if `version` is an older
/// one served here.
pub fn upgraded_version(api: ApiKey, version: i16) -> Option<i16> {
    let to = match (api, version) {
        (ApiKey::Produce, 0..=2) => 3,
        (ApiKey::Fetch, 0..=3) => 4,
        (ApiKey::ListOffsets, 0) => 1,
        (ApiKey::CreateTopics, 0..=1) => 2,
        (ApiKey::DeleteTopics, 0) => 1,
        (ApiKey::DescribeConfigs, 0) => 1,
        (ApiKey::OffsetCommit, 0..=1) => 2,
        (ApiKey::OffsetFetch, 0) => 1,
        (ApiKey::OffsetForLeaderEpoch, 0..=1) => 2,
        (ApiKey::DescribeLogDirs, 0) => 1,
        (ApiKey::WriteTxnMarkers, 0) => 1,
        _ => return None,
    };
    Some(to)
}

/// The request and response header versions of an old `version` whose
/// headers the codec would get wrong: those of an API whose oldest known
/// version is already flexible (header v2 and v1), where the old one had
/// non-flexible headers (v1 and v0).
pub fn header_versions(api: ApiKey, version: i16) -> Option<(i16, i16)> {
    (api == ApiKey::WriteTxnMarkers && version == 0).then_some((1, 0))
}

/// Reads Kafka's non-flexible primitives from a body.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("truncated body at byte {}", self.at))?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn i8(&mut self) -> Result<i8, String> {
        Ok(self.take(1)?[0] as i8)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A string's bytes with its length prefix (null included).
    fn string(&mut self) -> Result<&'a [u8], String> {
        let start = self.at;
        let len = self.i16()?;
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(&self.buf[start..self.at])
    }

    /// A bytes field's bytes with its length prefix (null included).
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let start = self.at;
        let len = self.i32()?;
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(&self.buf[start..self.at])
    }

    /// An array's element count (-1, null, as 0), bounded by the bytes
    /// left: every element takes at least one.
    fn count(&mut self) -> Result<usize, String> {
        let n = self.i32()?.max(0) as usize;
        if n > self.buf.len() - self.at {
            return Err(format!("an array of {n} cannot fit in the body"));
        }
        Ok(n)
    }

    /// An unsigned varint: a flexible version's lengths and tag counts.
    fn uvarint(&mut self) -> Result<usize, String> {
        let mut v = 0usize;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a varint longer than 5 bytes at byte {}", self.at))
    }

    /// A compact array's element count (0, null, as none), bounded by the
    /// bytes left as [`Reader::count`] is.
    fn compact_count(&mut self) -> Result<usize, String> {
        let n = self.uvarint()?.saturating_sub(1);
        if n > self.buf.len() - self.at {
            return Err(format!("an array of {n} cannot fit in the body"));
        }
        Ok(n)
    }

    /// A compact, non-null string, without its length.
    fn compact_string(&mut self) -> Result<&'a [u8], String> {
        match self.uvarint()? {
            0 => Err(format!("a null string at byte {}", self.at)),
            n => self.take(n - 1),
        }
    }

    /// Skips a tag buffer (no tagged field of these APIs is kept).
    fn skip_tags(&mut self) -> Result<(), String> {
        let fields = self.uvarint()?;
        if fields > self.buf.len() - self.at {
            return Err(format!("{fields} tagged fields cannot fit in the body"));
        }
        for _ in 0..fields {
            self.uvarint()?; // tag
            let size = self.uvarint()?;
            self.take(size)?;
        }
        Ok(())
    }

    fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.at..];
        self.at = self.buf.len();
        out
    }
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as i32).to_be_bytes());
}

fn put_uvarint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A non-flexible string (with its `i16` length, -1 for null) as a
/// compact one.
fn put_compact_string(out: &mut Vec<u8>, prefixed: &[u8]) {
    let value = &prefixed[2..];
    let null = i16::from_be_bytes([prefixed[0], prefixed[1]]) < 0;
    put_uvarint(out, if null { 0 } else { value.len() + 1 });
    out.extend_from_slice(value);
}

/// Copies an array of topics (a name, then an array of partitions) from
/// `r` to `out`, each partition rewritten by `partition`.
fn each_partition(
    r: &mut Reader<'_>,
    out: &mut Vec<u8>,
    mut partition: impl FnMut(&mut Reader<'_>, &mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let topics = r.count()?;
    put_count(out, topics);
    for _ in 0..topics {
        out.extend_from_slice(r.string()?);
        let partitions = r.count()?;
        put_count(out, partitions);
        for _ in 0..partitions {
            partition(r, out)?;
        }
    }
    Ok(())
}

/// `body` of `api` at the old `version`, rewritten in
/// [`upgraded_version`]'s layout.
pub fn upgrade(api: ApiKey, version: i16, body: &[u8]) -> Result<Bytes, String> {
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(body.len() + 16);
    match api {
        // v3 adds a (null) transactional id in front.
        ApiKey::Produce => {
            out.extend_from_slice(&(-1i16).to_be_bytes());
            out.extend_from_slice(body);
        }
        // v3 adds max_bytes (Kafka: no limit before it), v4
        // isolation_level (read_uncommitted).
        ApiKey::Fetch => {
            out.extend_from_slice(r.take(12)?); // replica_id, max_wait_ms, min_bytes
            let max_bytes = if version >= 3 { r.i32()? } else { i32::MAX };
            out.extend_from_slice(&max_bytes.to_be_bytes());
            out.push(0);
            out.extend_from_slice(r.rest());
        }
        // v1 drops each partition's max_num_offsets.
        ApiKey::ListOffsets => {
            out.extend_from_slice(r.take(4)?); // replica_id
            each_partition(&mut r, &mut out, |r, out| {
                out.extend_from_slice(r.take(12)?); // partition_index, timestamp
                r.i32()?; // max_num_offsets: at most one is answered
                Ok(())
            })?;
        }
        // v1 adds validate_only at the end; v2 changes the response only.
        ApiKey::CreateTopics => {
            out.extend_from_slice(body);
            if version == 0 {
                out.push(0);
            }
        }
        // v1 adds include_synonyms at the end.
        ApiKey::DescribeConfigs => {
            out.extend_from_slice(body);
            out.push(0);
        }
        // v2 has a generation and member (v1 has them), a retention time,
        // and no per-partition commit timestamp (v1 has one).
        ApiKey::OffsetCommit => {
            out.extend_from_slice(r.string()?); // group_id
            if version == 1 {
                out.extend_from_slice(r.take(4)?); // generation_id
                out.extend_from_slice(r.string()?); // member_id
            } else {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                out.extend_from_slice(&0i16.to_be_bytes()); // member_id ""
            }
            out.extend_from_slice(&(-1i64).to_be_bytes()); // retention_time_ms
            each_partition(&mut r, &mut out, |r, out| {
                out.extend_from_slice(r.take(12)?); // partition_index, offset
                if version == 1 {
                    r.i64()?; // commit_timestamp
                }
                out.extend_from_slice(r.string()?); // metadata
                Ok(())
            })?;
        }
        // v2 adds each partition's current_leader_epoch (none).
        ApiKey::OffsetForLeaderEpoch => {
            each_partition(&mut r, &mut out, |r, out| {
                out.extend_from_slice(r.take(4)?); // partition
                out.extend_from_slice(&(-1i32).to_be_bytes());
                out.extend_from_slice(r.take(4)?); // leader_epoch
                Ok(())
            })?;
        }
        // The same layout in both versions.
        ApiKey::DeleteTopics | ApiKey::OffsetFetch | ApiKey::DescribeLogDirs => {
            out.extend_from_slice(body);
        }
        // v1 is v0 made flexible: compact lengths, a tag buffer after each
        // structure.
        ApiKey::WriteTxnMarkers => {
            let markers = r.count()?;
            put_uvarint(&mut out, markers + 1);
            for _ in 0..markers {
                out.extend_from_slice(r.take(11)?); // producer id and epoch, result
                let topics = r.count()?;
                put_uvarint(&mut out, topics + 1);
                for _ in 0..topics {
                    put_compact_string(&mut out, r.string()?);
                    let partitions = r.count()?;
                    put_uvarint(&mut out, partitions + 1);
                    out.extend_from_slice(r.take(partitions * 4)?);
                    out.push(0);
                }
                out.extend_from_slice(r.take(4)?); // coordinator_epoch
                out.push(0);
            }
            out.push(0);
        }
        other => return Err(format!("{other:?} v{version} is not rewritten")),
    }
    Ok(Bytes::from(out))
}

/// A response `body` of `api` encoded in [`upgraded_version`]'s layout,
/// rewritten in the old `version`'s.
pub fn downgrade(api: ApiKey, version: i16, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = Reader::new(body);
    let mut out = Vec::with_capacity(body.len());
    match api {
        // v3's layout is v2's; v1 has no log_append_time, v0 no throttle.
        ApiKey::Produce => {
            each_partition(&mut r, &mut out, |r, out| {
                out.extend_from_slice(r.take(14)?); // index, error_code, base_offset
                let log_append_time = r.take(8)?;
                if version >= 2 {
                    out.extend_from_slice(log_append_time);
                }
                Ok(())
            })?;
            let throttle = r.take(4)?;
            if version >= 1 {
                out.extend_from_slice(throttle);
            }
        }
        // v4 adds last_stable_offset and aborted_transactions; v0 has no
        // throttle.
        ApiKey::Fetch => {
            let throttle = r.take(4)?;
            if version >= 1 {
                out.extend_from_slice(throttle);
            }
            each_partition(&mut r, &mut out, |r, out| {
                out.extend_from_slice(r.take(14)?); // index, error_code, high_watermark
                r.i64()?; // last_stable_offset
                let aborted = r.i32()?;
                if aborted > 0 {
                    r.take(aborted as usize * 16)?;
                }
                out.extend_from_slice(r.bytes()?); // records
                Ok(())
            })?;
        }
        // v0 answers a list of offsets (here at most one: none when the
        // lookup found none) instead of a timestamp and an offset.
        ApiKey::ListOffsets => {
            each_partition(&mut r, &mut out, |r, out| {
                out.extend_from_slice(r.take(6)?); // index, error_code
                r.i64()?; // timestamp
                let offset = r.i64()?;
                if offset >= 0 {
                    put_count(out, 1);
                    out.extend_from_slice(&offset.to_be_bytes());
                } else {
                    put_count(out, 0);
                }
                Ok(())
            })?;
        }
        // v2 adds throttle in front; v1 has error_message, v0 not.
        ApiKey::CreateTopics => {
            r.i32()?;
            let topics = r.count()?;
            put_count(&mut out, topics);
            for _ in 0..topics {
                out.extend_from_slice(r.string()?);
                out.extend_from_slice(r.take(2)?);
                let message = r.string()?;
                if version >= 1 {
                    out.extend_from_slice(message);
                }
            }
        }
        // v1 adds throttle in front, as OffsetForLeaderEpoch v2 does (whose
        // v0 also has no leader_epoch).
        ApiKey::DeleteTopics => {
            r.i32()?;
            out.extend_from_slice(r.rest());
        }
        ApiKey::OffsetForLeaderEpoch => {
            r.i32()?;
            each_partition(&mut r, &mut out, |r, out| {
                out.extend_from_slice(r.take(6)?); // error_code, partition
                let leader_epoch = r.take(4)?;
                if version >= 1 {
                    out.extend_from_slice(leader_epoch);
                }
                out.extend_from_slice(r.take(8)?); // end_offset
                Ok(())
            })?;
        }
        // v1 reports each config's source and synonyms; v0 whether it is
        // the default.
        ApiKey::DescribeConfigs => {
            out.extend_from_slice(r.take(4)?); // throttle
            let results = r.count()?;
            put_count(&mut out, results);
            for _ in 0..results {
                out.extend_from_slice(r.take(2)?); // error_code
                out.extend_from_slice(r.string()?); // error_message
                out.extend_from_slice(r.take(1)?); // resource_type
                out.extend_from_slice(r.string()?); // resource_name
                let configs = r.count()?;
                put_count(&mut out, configs);
                for _ in 0..configs {
                    out.extend_from_slice(r.string()?); // name
                    out.extend_from_slice(r.string()?); // value
                    out.extend_from_slice(r.take(1)?); // read_only
                    let source = r.i8()?;
                    out.push(u8::from(source == DEFAULT_CONFIG_SOURCE));
                    out.extend_from_slice(r.take(1)?); // is_sensitive
                    for _ in 0..r.count()? {
                        r.string()?;
                        r.string()?;
                        r.i8()?;
                    }
                }
            }
        }
        ApiKey::OffsetCommit | ApiKey::OffsetFetch | ApiKey::DescribeLogDirs => {
            out.extend_from_slice(r.rest());
        }
        // v1 is v0 made flexible.
        ApiKey::WriteTxnMarkers => {
            let markers = r.compact_count()?;
            put_count(&mut out, markers);
            for _ in 0..markers {
                out.extend_from_slice(r.take(8)?); // producer_id
                let topics = r.compact_count()?;
                put_count(&mut out, topics);
                for _ in 0..topics {
                    let name = r.compact_string()?;
                    out.extend_from_slice(&(name.len() as i16).to_be_bytes());
                    out.extend_from_slice(name);
                    let partitions = r.compact_count()?;
                    put_count(&mut out, partitions);
                    for _ in 0..partitions {
                        out.extend_from_slice(r.take(6)?); // index, error_code
                        r.skip_tags()?;
                    }
                    r.skip_tags()?;
                }
                r.skip_tags()?;
            }
            r.skip_tags()?;
        }
        other => return Err(format!("{other:?} v{version} is not rewritten")),
    }
    if r.at != body.len() {
        return Err(format!("{} bytes left after the {api:?} response", body.len() - r.at));
    }
    Ok(out)
}

/// DescribeConfigs' `config_source` for a value nobody set
/// (`DEFAULT_CONFIG`).
const DEFAULT_CONFIG_SOURCE: i8 = 5;

#[cfg(test)]
mod tests;
