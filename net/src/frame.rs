//! Kafka frames: a 4-byte big-endian size, then that many bytes of request
//! (or response). A frame larger than [`REQUEST_BYTES_MAX`] closes the
//! connection, as Kafka does for `socket.request.max.bytes`.

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};

/// Kafka's `socket.request.max.bytes` default: 100 MiB.
pub const REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;

/// Smallest meaningful request: api key, version, correlation id, client id length.
pub const REQUEST_BYTES_MIN: usize = 10;

#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection in the middle of a frame.
    Truncated {
        expected: usize,
        got: usize,
    },
    /// The size prefix is negative, too small or above the limit.
    BadSize(i32),
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated { expected, got } => {
                write!(f, "connection closed after {got} of {expected} frame bytes")
            }
            FrameError::BadSize(n) => {
                write!(
                    f,
                    "frame size {n} outside [{REQUEST_BYTES_MIN}, {REQUEST_BYTES_MAX}] (socket.request.max.bytes)"
                )?;
                // A TLS record's header (handshake, version 3.x) read as a
                // size: the commonest misconfiguration, named.
                if (*n as u32) >> 16 == 0x1603 {
                    write!(
                        f,
                        "; it looks like a TLS handshake: a TLS client on a plaintext listener?"
                    )?;
                }
                Ok(())
            }
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Reads exactly `buf.len()` bytes; returns how many were read before EOF.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        let n = r.read(&mut buf[at..]).await?;
        if n == 0 {
            break;
        }
        at += n;
    }
    Ok(at)
}

/// Reads a frame's 4-byte size and checks it against the limits.
/// `Ok(None)` when the peer closed the connection cleanly between frames.
pub async fn read_frame_size<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<usize>, FrameError> {
    read_frame_size_from(r, REQUEST_BYTES_MIN).await
}

/// [`read_frame_size`] for frames that are not Kafka requests and may be
/// shorter (a SASL token after a v0 handshake: `\0u\0pw` is 5 bytes).
pub async fn read_frame_size_from<R: AsyncRead + Unpin>(
    r: &mut R,
    min: usize,
) -> Result<Option<usize>, FrameError> {
    let mut size = [0u8; 4];
    let got = read_full(r, &mut size).await.map_err(FrameError::Io)?;
    if got == 0 {
        return Ok(None);
    }
    if got < 4 {
        return Err(FrameError::Truncated { expected: 4, got });
    }
    let n = i32::from_be_bytes(size);
    if n < min as i32 || n as usize > REQUEST_BYTES_MAX {
        return Err(FrameError::BadSize(n));
    }
    Ok(Some(n as usize))
}

/// First buffer of a frame body: whole for the requests clients send in
/// practice (librdkafka's `message.max.bytes` is 1,000,000), so the produce
/// path allocates once and copies nothing twice; a larger frame's buffer
/// grows as its bytes arrive, so a size prefix claiming 100 MiB followed by
/// nothing holds 1 MiB, not 100 MiB.
pub const FRAME_BUFFER_BYTES_FIRST: usize = 1024 * 1024;

/// Reads a frame body of `n` bytes (from [`read_frame_size`]). Memory grows
/// with the bytes received (doubling), never ahead of them by more than
/// the bytes already there.
pub async fn read_frame_body<R: AsyncRead + Unpin>(
    r: &mut R,
    n: usize,
) -> Result<Bytes, FrameError> {
    let mut body = BytesMut::zeroed(n.min(FRAME_BUFFER_BYTES_FIRST));
    let mut at = 0;
    loop {
        let got = read_full(r, &mut body[at..]).await.map_err(FrameError::Io)?;
        at += got;
        if at < body.len() {
            return Err(FrameError::Truncated { expected: n, got: at });
        }
        if at == n {
            return Ok(body.freeze());
        }
        body.resize((body.len() * 2).min(n), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    /// One whole frame, as the connection reads it (size, then body).
    async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Bytes>, FrameError> {
        match read_frame_size(r).await? {
            None => Ok(None),
            Some(n) => read_frame_body(r, n).await.map(Some),
        }
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_are_read_whole_and_in_order() {
        let mut input = framed(b"0123456789abc");
        input.extend(framed(b"the second frame"));
        let mut r = &input[..];
        assert_eq!(&block_on(read_frame(&mut r)).unwrap().unwrap()[..], b"0123456789abc");
        assert_eq!(&block_on(read_frame(&mut r)).unwrap().unwrap()[..], b"the second frame");
        assert!(block_on(read_frame(&mut r)).unwrap().is_none());
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut r = &[0u8, 0][..];
        assert!(matches!(block_on(read_frame(&mut r)), Err(FrameError::Truncated { .. })));
        let big = ((REQUEST_BYTES_MAX + 1) as i32).to_be_bytes();
        assert!(matches!(block_on(read_frame(&mut &big[..])), Err(FrameError::BadSize(_))));
        let neg = (-5i32).to_be_bytes();
        assert!(matches!(block_on(read_frame(&mut &neg[..])), Err(FrameError::BadSize(_))));
        let short = framed(b"0123456789")[..8].to_vec();
        assert!(matches!(block_on(read_frame(&mut &short[..])), Err(FrameError::Truncated { .. })));
        let hello = [0x16, 0x03, 0x01, 0x02, 0x00];
        let e = block_on(read_frame(&mut &hello[..])).unwrap_err().to_string();
        assert!(e.contains("TLS client on a plaintext listener"), "{e}");
        assert!(!FrameError::BadSize(-5).to_string().contains("TLS"));
    }

    #[test]
    fn large_frames_grow_to_their_size_and_truncation_is_reported_whole() {
        let n = 3 * FRAME_BUFFER_BYTES_FIRST + 5;
        let body: Vec<u8> = (0..n as u32).map(|i| i as u8).collect();
        let input = framed(&body);
        assert_eq!(&block_on(read_frame(&mut &input[..])).unwrap().unwrap()[..], &body[..]);
        let got = 2 * FRAME_BUFFER_BYTES_FIRST + 7;
        let cut = &input[..4 + got];
        match block_on(read_frame(&mut &cut[..])) {
            Err(FrameError::Truncated { expected, got: g }) => assert_eq!((expected, g), (n, got)),
            other => panic!("{other:?}"),
        }
    }
}
