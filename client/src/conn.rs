//! One TCP connection to one broker: request frames encoded with the
//! `kafka-protocol` crate, responses read whole and checked against their
//! correlation id.
//!
//! Owns framing only; it must not know topics, leaders or retries (that is
//! [`crate::cluster`]). The load generator's hot paths only use
//! [`Conn::write_frame`] and [`Conn::read_response`]: frames are pre-encoded
//! once and re-sent with a new correlation id, so no time is spent per
//! record. Every read and write is bounded by [`RESPONSE_TIMEOUT`], every
//! connect by [`CONNECT_TIMEOUT`].

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use net::kafka_protocol::messages::*;
use net::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::tls_stream::TlsStream;

/// Longest a blocking read waits for a response: well above any broker
/// latency, so a stuck broker fails the run instead of hanging it.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest a connection attempt waits (per resolved address): a host that
/// drops SYNs fails in seconds instead of the kernel's two minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response frame accepted (a fetch answers with at most its
/// `max_bytes` plus headers).
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Versions spoken; every Kafka broker since 2.x serves them, and Corelog too.
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 12;
pub const METADATA_VERSION: i16 = 9;
pub const LIST_OFFSETS_VERSION: i16 = 7;
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const DELETE_TOPICS_VERSION: i16 = 4;

/// The client id every request carries (brokers show it in group members).
pub const CLIENT_ID: &str = "corelog";

/// Offset of the correlation id in an encoded request frame: after the
/// frame size (4), the API key (2) and the API version (2).
const CORRELATION_AT: usize = 8;

/// Encodes a whole request frame (size prefix included).
pub fn encode_frame<Req: Encodable>(
    api: ApiKey,
    version: i16,
    correlation: i32,
    body: &Req,
) -> Result<Vec<u8>> {
    net::codec::encode_request(api, version, correlation, CLIENT_ID, body)
        .map_err(|e| anyhow::anyhow!("encoding {api:?} v{version}: {e}"))
}

/// Sets the correlation id of a frame made by [`encode_frame`].
pub fn set_correlation(frame: &mut [u8], correlation: i32) {
    frame[CORRELATION_AT..CORRELATION_AT + 4].copy_from_slice(&correlation.to_be_bytes());
}

/// One TCP connection to one broker.
pub struct Conn {
    stream: Stream,
    correlation: i32,
    pub addr: String,
    /// When the SASL session the broker granted should be renewed (85%
    /// of it): [`crate::Client`] opens a new connection from then on.
    pub renew_at: Option<std::time::Instant>,
}

/// The connection's bytes: as they are, or through rustls.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Conn {
    /// Connects to `addr` (`host:port`) as `security` says: TLS first,
    /// then the SASL login.
    pub fn connect_with(addr: &str, security: &crate::security::Security) -> Result<Conn> {
        let mut conn = Conn::connect(addr)?;
        if let Some(config) = &security.tls {
            let Stream::Plain(tcp) = conn.stream else { unreachable!("a new connection") };
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .with_context(|| format!("{host:?} is not a server name"))?;
            let tls = TlsStream::handshake(config.clone(), name, tcp)
                .with_context(|| format!("TLS handshake with {addr}"))?;
            conn.stream = Stream::Tls(Box::new(tls));
        }
        if let Some(login) = &security.sasl {
            let lifetime = crate::security::log_in(login, &mut conn)?;
            conn.renew_at = (lifetime > 0).then(|| {
                let at = Duration::from_millis((lifetime as u64).saturating_mul(85) / 100);
                std::time::Instant::now() + at.min(Duration::from_secs(365 * 24 * 3600))
            });
        }
        Ok(conn)
    }

    /// Connects to `addr` (`host:port`), trying each address it resolves to.
    pub fn connect(addr: &str) -> Result<Conn> {
        let resolved: Vec<_> = addr
            .to_socket_addrs()
            .with_context(|| format!("connecting to {addr}: cannot resolve the address"))?
            .collect();
        let mut last = None;
        for a in &resolved {
            match TcpStream::connect_timeout(a, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
                    stream.set_write_timeout(Some(RESPONSE_TIMEOUT))?;
                    let stream = Stream::Plain(stream);
                    let addr = addr.to_string();
                    return Ok(Conn { stream, correlation: 0, addr, renew_at: None });
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) => Err(e).with_context(|| format!("connecting to {addr}")),
            None => bail!("connecting to {addr}: the address resolves to nothing"),
        }
    }

    /// A second handle on the same connection, for a reader thread beside
    /// a writer (a TLS session is shared, [`TlsStream`]).
    pub fn try_clone(&self) -> Result<Conn> {
        let stream = match &self.stream {
            Stream::Plain(s) => Stream::Plain(s.try_clone()?),
            Stream::Tls(s) => Stream::Tls(Box::new(s.try_clone()?)),
        };
        Ok(Conn {
            stream,
            renew_at: self.renew_at,
            correlation: self.correlation,
            addr: self.addr.clone(),
        })
    }

    pub fn write_frame(&mut self, frame: &[u8]) -> Result<()> {
        self.stream.write_all(frame).with_context(|| format!("writing to {}", self.addr))?;
        // Both write through (a TLS handle sends its records in `write`).
        self.stream.flush().with_context(|| format!("writing to {}", self.addr))
    }

    /// Reads one response frame and returns it after the correlation id,
    /// checking that id.
    pub fn read_response(&mut self, correlation: i32) -> Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .with_context(|| format!("reading a response from {}", self.addr))?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > RESPONSE_BYTES_MAX {
            bail!("response frame of {size} bytes from {}", self.addr);
        }
        let mut buf = BytesMut::zeroed(size as usize);
        self.stream.read_exact(&mut buf).with_context(|| format!("reading from {}", self.addr))?;
        let mut buf = buf.freeze();
        let got = buf.get_i32();
        if got != correlation {
            bail!("response for request {got} from {}, expected {correlation}", self.addr);
        }
        Ok(buf)
    }

    /// Sends a request that gets no response (Produce with acks=0).
    pub fn send<Req: Encodable>(&mut self, api: ApiKey, version: i16, body: &Req) -> Result<()> {
        self.correlation += 1;
        let frame = encode_frame(api, version, self.correlation, body)?;
        self.write_frame(&frame)
    }

    /// One request, one response (admin calls; not for the hot path).
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Result<Resp> {
        self.correlation += 1;
        let frame = encode_frame(api, version, self.correlation, body)?;
        self.write_frame(&frame)?;
        let mut buf = self.read_response(self.correlation)?;
        skip_response_header_tags(&mut buf, api, version)?;
        Resp::decode(&mut buf, version)
            .with_context(|| format!("{api:?} v{version} response does not decode"))
    }
}

/// Skips what follows the correlation id in a response header (the tagged
/// fields of header v1).
pub fn skip_response_header_tags(buf: &mut Bytes, api: ApiKey, version: i16) -> Result<()> {
    if api.response_header_version(version) >= 1 {
        // The tag count; Kafka brokers send no header tags, so it is 0.
        let tags = buf.try_get_u8().context("empty response")?;
        if tags != 0 {
            bail!("{api:?} response header carries tagged fields");
        }
    }
    Ok(())
}

/// A topic name for a request.
pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A string for a request.
pub fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
