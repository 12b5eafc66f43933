//! Frames between nodes on a controller's port: a 4-byte big-endian
//! length (of what follows), a kind byte, the payload.
//!
//! | kind | payload |
//! |---|---|
//! | 1 `Raft` | a Raft message between voters ([`quorum::wire`]), no reply |
//! | 2 `Request` | a node's request to the controller ([`super::rpc::Request`]) |
//! | 3 `Response` | the answer to the request before it on the connection |
//! | 4 `Login` | a SCRAM message of the connecting node ([`super::login`]) |
//! | 5 `LoginAnswer` | the controller's SCRAM answer, or `e=` and why not |
//!
//! A frame above [`FRAME_BYTES_MAX`] (or the caller's smaller bound), of
//! an unknown kind, or cut short is an error: the connection is closed.

use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// Largest frame: a snapshot of the metadata image in a Raft message or a
/// fetch answer. Only controllers and nodes of the cluster connect to a
/// controller's port (see decision 35 on trusting peers).
pub const FRAME_BYTES_MAX: usize = 128 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Raft = 1,
    Request = 2,
    Response = 3,
    Login = 4,
    LoginAnswer = 5,
}

pub async fn write_frame<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    kind: Kind,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    frame.push(kind as u8);
    frame.extend_from_slice(payload);
    w.write_all(&frame).await?;
    w.flush().await
}

pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<(Kind, Vec<u8>)> {
    read_frame_at_most(r, FRAME_BYTES_MAX).await
}

/// [`read_frame`] of at most `max` bytes: what is read before a login.
pub async fn read_frame_at_most<R: AsyncReadExt + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<(Kind, Vec<u8>)> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    let max = max.min(FRAME_BYTES_MAX);
    if len == 0 || len > max {
        return Err(bad(format!("a frame of {len} bytes (at most {max})")));
    }
    let mut kind = [0u8; 1];
    r.read_exact(&mut kind).await?;
    let kind = match kind[0] {
        1 => Kind::Raft,
        2 => Kind::Request,
        3 => Kind::Response,
        4 => Kind::Login,
        5 => Kind::LoginAnswer,
        k => return Err(bad(format!("a frame of unknown kind {k}"))),
    };
    let mut payload = vec![0u8; len - 1];
    r.read_exact(&mut payload).await?;
    Ok((kind, payload))
}
