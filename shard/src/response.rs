//! What a handler answers: a response frame in memory, or (Fetch with cold
//! data) parts to send in order, some of them segment file ranges spliced
//! to the socket ([`Out::Parts`]); and the two phases a request is handled
//! in ([`Reply`]). `Ok(None)` means no response is sent (Produce with
//! acks=0); an `Err` closes the connection.
//!
//! Pure types and the encoding helpers; nothing here runs a request.

use std::rc::Rc;

use bytes::Bytes;
use engine::disk::DmaDiskFile;
use net::codec::{DecodeError, Request};
use net::kafka_protocol;

pub type HandlerResult = Result<Option<Out>, DecodeError>;

/// A response to send.
pub enum Out {
    /// A whole frame.
    Frame(Bytes),
    /// A frame in parts, sent in order (its size prefix counts them all).
    Parts(Vec<Part>),
}

/// A piece of a response frame.
pub enum Part {
    Bytes(Bytes),
    /// `len` bytes at `position` of a segment file, whole acknowledged
    /// batches (the engine's cold read), spliced without a copy.
    File {
        file: Rc<DmaDiskFile>,
        position: u64,
        len: u64,
    },
}

/// The waiting part of a request, awaited in order by the connection.
pub type Later = std::pin::Pin<Box<dyn std::future::Future<Output = HandlerResult>>>;

/// What the in-order phase of a request produced.
pub enum Reply {
    /// The response (or none) is ready.
    Now(HandlerResult),
    /// The response comes when this future completes.
    Later(Later),
}

/// Encodes a response frame, turning an encoding failure (a bug) into a
/// closed connection rather than a panic.
pub fn respond<T: kafka_protocol::protocol::Encodable>(
    request: &Request,
    body: &T,
) -> HandlerResult {
    respond_in(request, request.version, body)
}

pub fn respond_in<T: kafka_protocol::protocol::Encodable>(
    request: &Request,
    version: i16,
    body: &T,
) -> HandlerResult {
    net::codec::encode_response(request, version, body).map(|b| Some(Out::Frame(b))).map_err(
        |reason| DecodeError::Malformed {
            api: request.api as i16,
            version,
            reason: format!("cannot encode the response: {reason}"),
        },
    )
}
