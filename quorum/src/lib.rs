//! Corelog's metadata quorum: 1, 3 or 5 voters replicate the metadata log
//! with raft-rs (TiKV's Raft, no runtime of its own). This crate is the
//! part without I/O: the caller ticks, delivers messages, proposes, and
//! carries out each [`Output`] (durable writes, then messages, then
//! committed entries). The controller drives it on its core over TCP and
//! the engine's files; the simulation in `tests/` drives it over a
//! seeded network that drops, delays, duplicates and reorders.
//!
//! - [`store`]: a voter's log in memory, and the [`Write`]s that make it durable.
//! - [`voter`]: one voter: ticks, steps, proposals, and what each [`Output`] asks.
//! - [`wire`]: Raft messages and writes as bytes.

pub mod store;
pub mod voter;
pub mod wire;

pub use raft::prelude::{Entry, HardState, Message, MessageType, Snapshot};
pub use store::{LogStore, Write};
pub use voter::{ElectionTimeout, Output, Proposed, Voter};

/// What a voter refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumError {
    /// Only the leader takes proposals; `leader` is the one known, if any.
    NotLeader { leader: Option<u64> },
    /// A message not for this voter, from outside the quorum, or of a
    /// kind no peer sends.
    Misdirected { from: u64, to: u64 },
    /// The voter's configuration is invalid.
    Config(String),
    /// raft-rs refused a step or a proposal.
    Raft(String),
    /// Bytes that are not a message or a write.
    Decode(String),
}

impl std::fmt::Display for QuorumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumError::NotLeader { leader: Some(l) } => write!(f, "not the leader; voter {l} is"),
            QuorumError::NotLeader { leader: None } => write!(f, "not the leader; none is known"),
            QuorumError::Misdirected { from, to } => {
                write!(f, "a message from {from} to {to} is not for this voter")
            }
            QuorumError::Config(e) => write!(f, "quorum configuration: {e}"),
            QuorumError::Raft(e) => write!(f, "raft: {e}"),
            QuorumError::Decode(e) => write!(f, "undecodable: {e}"),
        }
    }
}

impl std::error::Error for QuorumError {}
