//! Raft messages and log writes as bytes: protobuf, as raft-rs defines
//! them (`eraftpb.proto`), so a message leaves one voter and enters
//! another unchanged.
//!
//! A [`Write`] is one tag byte and the protobuf of its payload:
//!
//! | tag | payload |
//! |---|---|
//! | 1 | `Entry`, repeated as length-prefixed (u32, big endian) protobufs |
//! | 2 | `HardState` |
//! | 3 | `Snapshot` (metadata and the state machine's data) |
//!
//! Decoding never panics: bytes from the network or a torn file are an
//! error.

use protobuf::Message as _;
use raft::prelude::{Entry, HardState, Message, Snapshot};

use crate::store::Write;
use crate::QuorumError;

/// Largest Raft message accepted from a peer: a full append message
/// ([`crate::voter::MESSAGE_BYTES_MAX`]) or a snapshot of the metadata
/// image, with room to spare.
pub const MESSAGE_BYTES_MAX: usize = 64 << 20;

pub fn encode_message(m: &Message) -> Vec<u8> {
    m.write_to_bytes().expect("a raft message encodes")
}

pub fn decode_message(bytes: &[u8]) -> Result<Message, QuorumError> {
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(QuorumError::Decode(format!("a message of {} bytes", bytes.len())));
    }
    Message::parse_from_bytes(bytes).map_err(|e| QuorumError::Decode(e.to_string()))
}

pub fn encode_write(w: &Write) -> Vec<u8> {
    let mut out = Vec::new();
    match w {
        Write::Entries(entries) => {
            out.push(1);
            for e in entries {
                let b = e.write_to_bytes().expect("an entry encodes");
                out.extend_from_slice(&(b.len() as u32).to_be_bytes());
                out.extend_from_slice(&b);
            }
        }
        Write::HardState(hs) => {
            out.push(2);
            out.extend(hs.write_to_bytes().expect("a hard state encodes"));
        }
        Write::Snapshot(s) => {
            out.push(3);
            out.extend(s.write_to_bytes().expect("a snapshot encodes"));
        }
    }
    out
}

pub fn decode_write(bytes: &[u8]) -> Result<Write, QuorumError> {
    let bad = |e: String| QuorumError::Decode(format!("raft log write: {e}"));
    let (&tag, mut rest) = bytes.split_first().ok_or_else(|| bad("empty".into()))?;
    match tag {
        1 => {
            let mut entries = Vec::new();
            while !rest.is_empty() {
                let (len, after) = rest.split_at_checked(4).ok_or_else(|| bad("torn".into()))?;
                let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
                let (e, after) = after.split_at_checked(len).ok_or_else(|| bad("torn".into()))?;
                entries.push(Entry::parse_from_bytes(e).map_err(|e| bad(e.to_string()))?);
                rest = after;
            }
            let contiguous = entries.windows(2).all(|w| w[1].index == w[0].index + 1);
            if !contiguous {
                return Err(bad("entries out of order".into()));
            }
            Ok(Write::Entries(entries))
        }
        2 => {
            HardState::parse_from_bytes(rest).map(Write::HardState).map_err(|e| bad(e.to_string()))
        }
        3 => Snapshot::parse_from_bytes(rest).map(Write::Snapshot).map_err(|e| bad(e.to_string())),
        t => Err(bad(format!("unknown tag {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use raft::prelude::{HardState, MessageType};

    use super::*;

    fn entries() -> Vec<Entry> {
        (7..10)
            .map(|index| Entry {
                index,
                term: 2,
                data: vec![index as u8; 40].into(),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn writes_and_messages_round_trip() {
        let mut snapshot = Snapshot::default();
        snapshot.set_data(b"image".to_vec().into());
        snapshot.mut_metadata().index = 9;
        for w in [
            Write::Entries(entries()),
            Write::HardState(HardState { term: 3, vote: 2, commit: 8, ..Default::default() }),
            Write::Snapshot(snapshot),
        ] {
            assert_eq!(decode_write(&encode_write(&w)).unwrap(), w);
        }
        let m = Message {
            msg_type: MessageType::MsgAppend,
            to: 2,
            from: 1,
            term: 3,
            entries: entries().into(),
            ..Default::default()
        };
        assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
    }

    /// A write torn at any byte, or with a byte flipped, decodes to an
    /// error or to some write, never to a panic; entries never come out
    /// of order.
    #[test]
    fn torn_and_flipped_writes_are_errors_not_panics() {
        let bytes = encode_write(&Write::Entries(entries()));
        for cut in 0..bytes.len() {
            let _ = decode_write(&bytes[..cut]);
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x5a;
            if let Ok(Write::Entries(e)) = decode_write(&flipped) {
                assert!(e.windows(2).all(|w| w[1].index == w[0].index + 1));
            }
        }
        assert!(decode_write(&[9]).is_err() && decode_write(&[]).is_err());
        assert!(decode_message(&[0xff; 64]).is_err());
    }
}
