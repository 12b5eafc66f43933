//! A follower's connection to a leader's broker: Kafka request frames out,
//! response frames in, on one glommio TCP stream, one request at a time.
//!
//! Runs on the follower's shard, inside its fetcher task. It owns framing
//! only (what to fetch and what to do with the answer is
//! [`super::fetcher`]); every connect and every response is bounded.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use net::kafka_protocol::messages::{ApiKey, ResponseHeader};
use net::kafka_protocol::protocol::{Decodable, Encodable};

use crate::admission::within;

/// How long connecting to a leader may take: on loopback or a LAN a
/// connect that takes longer is to a host that is gone.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest response accepted: a fetch asks for at most
/// [`super::fetcher::FETCH_BYTES_MAX`], plus headers of every partition.
pub const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// The client id of replica fetches (brokers log it).
const CLIENT_ID: &str = "corelog-replica-fetcher";

/// Why a call failed: the connection is unusable afterwards.
#[derive(Debug)]
pub enum WireError {
    Io(std::io::Error),
    TimedOut,
    Protocol(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::TimedOut => write!(f, "timed out"),
            WireError::Protocol(m) => write!(f, "{m}"),
        }
    }
}

/// One connection to one broker.
pub struct Wire {
    stream: TcpStream,
    correlation: i32,
}

impl Wire {
    pub async fn connect(host: &str, port: u16) -> Result<Wire, WireError> {
        let addr = format!("{host}:{port}");
        let stream = within(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str()))
            .await
            .ok_or(WireError::TimedOut)?
            .map_err(|e| WireError::Io(std::io::Error::other(e.to_string())))?;
        stream
            .set_nodelay(true)
            .map_err(|e| WireError::Io(std::io::Error::other(e.to_string())))?;
        Ok(Wire { stream, correlation: 0 })
    }

    /// Sends `body` as `api` v`version` and decodes its response, within
    /// `limit` for the whole exchange.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
        limit: Duration,
    ) -> Result<Resp, WireError> {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let frame = net::codec::encode_request(api, version, correlation, CLIENT_ID, body)
            .map_err(|e| WireError::Protocol(format!("{api:?} request: {e}")))?;
        let exchange = async {
            self.stream.write_all(&frame).await.map_err(WireError::Io)?;
            self.stream.flush().await.map_err(WireError::Io)?;
            let mut size = [0u8; 4];
            self.stream.read_exact(&mut size).await.map_err(WireError::Io)?;
            let size = i32::from_be_bytes(size);
            if size < 4 || size as usize > RESPONSE_BYTES_MAX {
                return Err(WireError::Protocol(format!("a response frame of {size} bytes")));
            }
            let mut buf = BytesMut::zeroed(size as usize);
            self.stream.read_exact(&mut buf).await.map_err(WireError::Io)?;
            Ok(buf.freeze())
        };
        let mut buf: Bytes = within(limit, exchange).await.ok_or(WireError::TimedOut)??;
        let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
            .map_err(|e| WireError::Protocol(format!("{api:?} response header: {e}")))?;
        if header.correlation_id != correlation {
            return Err(WireError::Protocol(format!(
                "response to request {}, expected {correlation}",
                header.correlation_id
            )));
        }
        let response = Resp::decode(&mut buf, version)
            .map_err(|e| WireError::Protocol(format!("{api:?} v{version} response: {e}")))?;
        if buf.has_remaining() {
            return Err(WireError::Protocol(format!("{api:?} response with trailing bytes")));
        }
        Ok(response)
    }
}
