//! The records of `__consumer_offsets`: committed offsets, in Kafka's own
//! key and value layouts, so the topic reads the same as Kafka's.
//!
//! Each record of a batch in `__consumer_offsets-<p>` is one committed
//! offset (all integers big-endian, strings as `i16` length + UTF-8):
//!
//! - key, version 1: `version: i16 = 1`, `group: string`, `topic: string`,
//!   `partition: i32`;
//! - value, version 3: `version: i16 = 3`, `offset: i64`, `leader_epoch: i32`
//!   (-1 if unknown), `metadata: string`, `commit_timestamp: i64` (ms);
//! - a null value (a tombstone) deletes the offset (OffsetDelete,
//!   DeleteGroups).
//!
//! and group metadata, written when a group becomes stable or empty, so
//! that members keep their generation across a broker restart:
//!
//! - key, version 2: `version: i16 = 2`, `group: string`;
//! - value, version 3: `version: i16 = 3`, `protocol_type: string`,
//!   `generation: i32`, `protocol: nullable string`, `leader: nullable
//!   string`, `current_state_timestamp: i64`, `members: i32 count`, then per
//!   member `member_id: string`, `group_instance_id: nullable string`,
//!   `client_id: string`, `client_host: string`, `rebalance_timeout: i32`,
//!   `session_timeout: i32`, `subscription: bytes (i32 length)`,
//!   `assignment: bytes`;
//! - a null value deletes the group (DeleteGroups).
//!
//! Pure functions, no I/O; used by the coordinator on the shard that leads
//! the partition.

use crate::ids::{LeaderEpoch, Offset};

/// One committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: Offset,
    /// The leader epoch the consumer saw at `offset`; -1: unknown.
    pub leader_epoch: LeaderEpoch,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// A group's membership as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub timestamp: i64,
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A record of `__consumer_offsets`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// `value` is `None` for a tombstone.
    Offset { group: String, topic: String, partition: i32, value: Option<Committed> },
    /// `value` is `None` for a tombstone.
    Group { group: String, value: Option<GroupRecord> },
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Callers bound every string to i16::MAX bytes (topic names to 249,
    // group strings by `GROUP_STRING_BYTES_MAX` at JoinGroup).
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The key of an offset record.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + group.len() + topic.len());
    out.extend_from_slice(&OFFSET_KEY_VERSION.to_be_bytes());
    put_string(&mut out, group);
    put_string(&mut out, topic);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// The key of a group metadata record.
pub fn group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.extend_from_slice(&GROUP_METADATA_KEY_VERSION.to_be_bytes());
    put_string(&mut out, group);
    out
}

fn put_nullable(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

/// The value of a group metadata record.
pub fn group_value(g: &GroupRecord) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&GROUP_VALUE_VERSION.to_be_bytes());
    put_string(&mut out, &g.protocol_type);
    out.extend_from_slice(&g.generation.to_be_bytes());
    put_nullable(&mut out, g.protocol.as_deref());
    put_nullable(&mut out, g.leader.as_deref());
    out.extend_from_slice(&g.timestamp.to_be_bytes());
    out.extend_from_slice(&(g.members.len() as i32).to_be_bytes());
    for m in &g.members {
        put_string(&mut out, &m.member_id);
        put_nullable(&mut out, m.instance_id.as_deref());
        put_string(&mut out, &m.client_id);
        put_string(&mut out, &m.client_host);
        out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out
}

/// The value of an offset record.
pub fn offset_value(c: &Committed) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + c.metadata.len());
    out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&c.offset.0.to_be_bytes());
    out.extend_from_slice(&c.leader_epoch.0.to_be_bytes());
    put_string(&mut out, &c.metadata);
    out.extend_from_slice(&c.commit_timestamp.to_be_bytes());
    out
}

/// Reads the big-endian fields of a stored key or value (shared with the
/// transaction coordinator's records).
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub at: usize,
}

impl Reader<'_> {
    pub fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("record ends early at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    pub fn i8(&mut self) -> Result<i8, String> {
        Ok(self.take(1)?[0] as i8)
    }
    pub fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    pub fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    pub fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn string(&mut self) -> Result<String, String> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| format!("negative string length {len}"))?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "string is not UTF-8".into())
    }
    fn nullable(&mut self) -> Result<Option<String>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        String::from_utf8(self.take(len as usize)?.to_vec())
            .map(Some)
            .map_err(|_| "string is not UTF-8".into())
    }
    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize)?.to_vec())
    }
}

/// Decodes one record's key and value.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<OffsetsRecord, String> {
    let mut k = Reader { bytes: key, at: 0 };
    match k.i16()? {
        0 | OFFSET_KEY_VERSION => {
            let group = k.string()?;
            let topic = k.string()?;
            let partition = k.i32()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_value(v)?),
            };
            Ok(OffsetsRecord::Offset { group, topic, partition, value })
        }
        GROUP_METADATA_KEY_VERSION => {
            let group = k.string()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_group(v)?),
            };
            Ok(OffsetsRecord::Group { group, value })
        }
        v => Err(format!("unknown __consumer_offsets key version {v}")),
    }
}

fn decode_group(value: &[u8]) -> Result<GroupRecord, String> {
    let mut v = Reader { bytes: value, at: 0 };
    let version = v.i16()?;
    if !(0..=GROUP_VALUE_VERSION).contains(&version) {
        return Err(format!("unknown group metadata value version {version}"));
    }
    let protocol_type = v.string()?;
    let generation = v.i32()?;
    let protocol = v.nullable()?;
    let leader = v.nullable()?;
    let timestamp = if version >= 2 { v.i64()? } else { -1 };
    let count = v.i32()?;
    let mut members = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count.max(0) {
        let member_id = v.string()?;
        let instance_id = if version >= 3 { v.nullable()? } else { None };
        let client_id = v.string()?;
        let client_host = v.string()?;
        let rebalance_timeout_ms = if version >= 1 { v.i32()? } else { -1 };
        let session_timeout_ms = v.i32()?;
        let subscription = v.bytes()?;
        let assignment = v.bytes()?;
        members.push(MemberRecord {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupRecord { protocol_type, generation, protocol, leader, timestamp, members })
}

fn decode_value(value: &[u8]) -> Result<Committed, String> {
    let mut v = Reader { bytes: value, at: 0 };
    let version = v.i16()?;
    let offset = Offset(v.i64()?);
    let leader_epoch = LeaderEpoch(if version >= 3 { v.i32()? } else { -1 });
    let metadata = v.string()?;
    let commit_timestamp = v.i64()?;
    if version == 1 {
        v.i64()?; // expire timestamp, ignored as Kafka does since 2.1
    }
    if !(0..=OFFSET_VALUE_VERSION).contains(&version) {
        return Err(format!("unknown __consumer_offsets value version {version}"));
    }
    Ok(Committed { offset, leader_epoch, metadata, commit_timestamp })
}

/// Java's `String.hashCode` (over UTF-16 code units), which Kafka uses to
/// place a group: `abs(hash) % partitions`.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of `group`, as Kafka computes it
/// (`Utils.abs(groupId.hashCode) % partitions`), so a group lands on the
/// same partition number as on a Kafka cluster.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_tombstones_decode() {
        let c = Committed {
            offset: Offset(42),
            leader_epoch: LeaderEpoch(3),
            metadata: "m".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        let key = offset_key("g", "t", 7);
        let got = decode(&key, Some(&offset_value(&c))).unwrap();
        assert_eq!(
            got,
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 7,
                value: Some(c)
            }
        );
        assert!(matches!(decode(&key, None).unwrap(), OffsetsRecord::Offset { value: None, .. }));
        assert!(decode(&key[..key.len() - 1], None).is_err());
        let g = GroupRecord {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            timestamp: 5,
            members: vec![MemberRecord {
                member_id: "m1".into(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: b"sub".to_vec(),
                assignment: b"asg".to_vec(),
            }],
        };
        let got = decode(&group_key("g"), Some(&group_value(&g))).unwrap();
        assert_eq!(got, OffsetsRecord::Group { group: "g".into(), value: Some(g) });
        assert!(matches!(
            decode(&group_key("g"), None).unwrap(),
            OffsetsRecord::Group { value: None, .. }
        ));
        assert!(decode(&9i16.to_be_bytes(), None).is_err());
    }

    #[test]
    fn groups_are_placed_as_kafka_places_them() {
        // Values of Java's "...".hashCode(), computed independently (a
        // 31-fold over UTF-16 code units with 32-bit wrap-around).
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("console-consumer"), -648006740);
        assert_eq!(java_string_hash("my-group"), -1906497762);
        assert_eq!(java_string_hash("é€"), 15587);
        assert_eq!(partition_for("console-consumer", 50), 40);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("a", 50), 47);
    }
}
