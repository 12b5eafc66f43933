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
//! Keys of version 2 (Kafka's group metadata records) are skipped when
//! loading: Corelog does not write them (docs/decisions.md #19).
//!
//! Pure functions, no I/O; used by the coordinator on the shard that leads
//! the partition.

/// One committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// A record of `__consumer_offsets`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// `value` is `None` for a tombstone.
    Offset { group: String, topic: String, partition: i32, value: Option<Committed> },
    /// A record kind Corelog does not use (group metadata): skipped.
    Other,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Callers bound every string (group ids, topic names, metadata) far
    // below i16::MAX bytes.
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

/// The value of an offset record.
pub fn offset_value(c: &Committed) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + c.metadata.len());
    out.extend_from_slice(&OFFSET_VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&c.offset.to_be_bytes());
    out.extend_from_slice(&c.leader_epoch.to_be_bytes());
    put_string(&mut out, &c.metadata);
    out.extend_from_slice(&c.commit_timestamp.to_be_bytes());
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("record ends early at byte {}", self.at))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Result<String, String> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| format!("negative string length {len}"))?;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| "string is not UTF-8".into())
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
        GROUP_METADATA_KEY_VERSION => Ok(OffsetsRecord::Other),
        v => Err(format!("unknown __consumer_offsets key version {v}")),
    }
}

fn decode_value(value: &[u8]) -> Result<Committed, String> {
    let mut v = Reader { bytes: value, at: 0 };
    let version = v.i16()?;
    let offset = v.i64()?;
    let leader_epoch = if version >= 3 { v.i32()? } else { -1 };
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
            offset: 42,
            leader_epoch: 3,
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
