//! The controller client: how a shard asks its node's controller (the
//! local one of a single node, or the member that forwards to the active
//! controller of a cluster), and the block of producer ids it was handed.
//!
//! One per shard, on that shard's core. It holds a channel sender and a
//! range; it never touches the metadata log itself.

use std::cell::RefCell;
use std::ops::Range;

use super::{Answer, Command, ControllerMsg, QuorumState};
use crate::error::ControllerError;

pub struct ControllerClient {
    sender: flume::Sender<ControllerMsg>,
    /// Producer ids this shard may hand out (a block from the controller).
    producer_ids: RefCell<Range<i64>>,
}

impl ControllerClient {
    pub fn new(sender: flume::Sender<ControllerMsg>) -> ControllerClient {
        ControllerClient { sender, producer_ids: RefCell::new(0..0) }
    }

    /// Sends `command` to the node's controller and waits for its answer:
    /// once its records are committed and every shard of this node has
    /// the image they make.
    pub async fn ask(&self, command: Command) -> Result<Answer, ControllerError> {
        let (reply, answer) = flume::bounded(1);
        if self.sender.send_async(ControllerMsg::Command { command, reply }).await.is_err() {
            return Err(ControllerError::Stopped);
        }
        answer.recv_async().await.unwrap_or(Err(ControllerError::Stopped))
    }

    /// The metadata quorum as the active controller sees it.
    pub async fn describe_quorum(&self) -> Result<QuorumState, ControllerError> {
        let (reply, answer) = flume::bounded(1);
        if self.sender.send_async(ControllerMsg::DescribeQuorum { reply }).await.is_err() {
            return Err(ControllerError::Stopped);
        }
        answer.recv_async().await.unwrap_or(Err(ControllerError::Stopped))
    }

    /// The next id of this shard's block, asking the controller for a new
    /// block when it is used up.
    pub async fn next_producer_id(&self) -> Result<i64, ControllerError> {
        loop {
            {
                let mut ids = self.producer_ids.borrow_mut();
                if ids.start < ids.end {
                    let id = ids.start;
                    ids.start += 1;
                    return Ok(id);
                }
            }
            let (start, end) = match self.ask(Command::AllocateProducerIds).await? {
                Answer::ProducerIds { start, end } => (start, end),
                other => return Err(ControllerError::Unexpected(format!("{other:?}"))),
            };
            let mut ids = self.producer_ids.borrow_mut();
            // Another request may have refilled meanwhile; the newer block
            // wins and the rest of the older one is simply never used.
            if ids.start >= ids.end {
                *ids = start..end;
            }
        }
    }
}
