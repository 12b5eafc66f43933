//! A broker's connection to another node's broker (a follower's to its
//! leader, a transaction coordinator's to a partition's leader): Kafka
//! request frames out, response frames in, one request at a time, on the
//! other node's inter-broker listener (the first), in its protocol: TLS
//! on SSL and SASL_SSL, then a SASL login on SASL_PLAINTEXT and SASL_SSL
//! with `--inter-broker-credential` ([`crate::peer_auth`]), renewed on
//! the connection before the session the broker granted ends (KIP-368).
//!
//! Runs on the calling shard, inside its task. It owns framing and the
//! login only (what to fetch and what to do with the answer is
//! [`super::fetcher`]'s); every connect, handshake and response is
//! bounded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use auth::SaslMechanism;
use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use log::warn;
use net::kafka_protocol::error::ResponseError;
use net::kafka_protocol::messages::{
    ApiKey, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use net::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::admission::within;
use crate::log_limit::LogLimit;
use crate::peer_auth::Peers;
use crate::peer_stream::PeerStream;

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
    /// The TLS handshake or the SASL login failed: retrying will not help
    /// until a certificate or credential changes.
    Auth(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::TimedOut => write!(f, "timed out"),
            WireError::Protocol(m) => write!(f, "{m}"),
            WireError::Auth(m) => write!(f, "authentication failed: {m}"),
        }
    }
}

/// How long the TLS handshake and the SASL login may take together.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A session renewed on its connection must leave the broker's minimum
/// of a second between logins (Kafka's `MIN_REAUTH_INTERVAL`), with room.
const IN_BAND_MIN: Duration = Duration::from_millis(1500);

/// Longest wait counted for a renewal (a year: a session that long is as
/// good as unbounded, and `Instant` arithmetic stays far from overflow).
const SESSION_MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Versions of the login's requests (SaslAuthenticate v1 answers the
/// session's lifetime).
const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 1;

/// One connection to one broker.
pub struct Wire {
    stream: PeerStream,
    correlation: i32,
    peers: Rc<Peers>,
    host: String,
    port: u16,
    /// When to log in again before the session the broker granted ends
    /// (`None`: it does not end), and whether on this connection (a
    /// session too short for the broker's one second between logins is
    /// renewed by a new connection instead).
    login_again: Option<(Instant, bool)>,
}

impl Wire {
    /// Connects to `host:port`, the inter-broker listener of another node,
    /// and logs in as its protocol asks.
    pub async fn connect(peers: &Rc<Peers>, host: &str, port: u16) -> Result<Wire, WireError> {
        let addr = format!("{host}:{port}");
        let io = |e: glommio::GlommioError<()>| WireError::Io(std::io::Error::other(e.to_string()));
        let tcp = within(CONNECT_TIMEOUT, TcpStream::connect(addr.as_str()))
            .await
            .ok_or(WireError::TimedOut)?
            .map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        let login = async {
            let stream = peers.connect(host, tcp).await.map_err(WireError::Auth)?;
            let mut wire = Wire {
                stream,
                correlation: 0,
                peers: peers.clone(),
                host: host.to_string(),
                port,
                login_again: None,
            };
            if peers.protocol.is_sasl() {
                wire.login().await?;
            }
            Ok(wire)
        };
        within(LOGIN_TIMEOUT, login).await.ok_or(WireError::TimedOut)?
    }

    /// The SASL login with this node's credential: SaslHandshake, then
    /// SaslAuthenticate once (PLAIN) or twice (SCRAM, whose last answer
    /// proves the broker holds the credential too).
    async fn login(&mut self) -> Result<(), WireError> {
        let peers = self.peers.clone();
        let Some(credential) = &peers.credential else {
            return Err(WireError::Auth("no --inter-broker-credential to log in with".into()));
        };
        let mechanism = credential.mechanism.name();
        let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from(mechanism));
        let r: SaslHandshakeResponse = self
            .exchange(ApiKey::SaslHandshake, HANDSHAKE_VERSION, &handshake, LOGIN_TIMEOUT)
            .await?;
        if r.error_code == ResponseError::UnsupportedSaslMechanism.code() {
            let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(WireError::Auth(format!(
                "the broker does not offer {mechanism} (it offers {})",
                offered.join(", ")
            )));
        }
        if r.error_code != 0 {
            return Err(WireError::Auth(format!("SaslHandshake: error {}", r.error_code)));
        }
        let auth_error = |e: auth::AuthError| WireError::Auth(e.to_string());
        let lifetime = match credential.mechanism {
            SaslMechanism::Plain => {
                let message = auth::plain::client_message(&credential.user, credential.password());
                self.authenticate(message).await?.1
            }
            SaslMechanism::OAuthBearer => {
                return Err(WireError::Auth("OAUTHBEARER is not a broker's login".into()))
            }
            SaslMechanism::Scram(m) => {
                let (mut client, first) =
                    auth::ScramClient::new(m, &credential.user, credential.password())
                        .map_err(auth_error)?;
                let (server_first, _) = self.authenticate(first).await?;
                let last = client
                    .respond(&server_first, &mut peers.keys.borrow_mut())
                    .map_err(auth_error)?;
                let (server_final, lifetime) = self.authenticate(last).await?;
                client.verify(&server_final).map_err(auth_error)?;
                lifetime
            }
        };
        // KIP-368: log in again at 85% of the session (Kafka's clients pick
        // 85% to 95%), so the broker never closes it; on this connection
        // when that leaves the broker's second between logins.
        self.login_again = (lifetime > 0).then(|| {
            let at = Duration::from_millis((lifetime as u64).saturating_mul(85) / 100);
            (Instant::now() + at.min(SESSION_MAX), at >= IN_BAND_MIN)
        });
        Ok(())
    }

    /// One SaslAuthenticate round: the broker's bytes and the session's
    /// lifetime in milliseconds (0: unbounded).
    async fn authenticate(&mut self, bytes: Vec<u8>) -> Result<(Bytes, i64), WireError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let r: SaslAuthenticateResponse = self
            .exchange(ApiKey::SaslAuthenticate, AUTHENTICATE_VERSION, &request, LOGIN_TIMEOUT)
            .await?;
        if r.error_code != 0 {
            let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
            return Err(WireError::Auth(format!("error {}: {message}", r.error_code)));
        }
        Ok((r.auth_bytes, r.session_lifetime_ms))
    }

    /// Sends `body` as `api` v`version` and decodes its response, within
    /// `limit` for the whole exchange; logs in again first when the
    /// session is near its end.
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
        limit: Duration,
    ) -> Result<Resp, WireError> {
        match self.login_again {
            Some((at, true)) if Instant::now() >= at => {
                within(LOGIN_TIMEOUT, self.login()).await.ok_or(WireError::TimedOut)??;
            }
            Some((at, false)) if Instant::now() >= at => {
                *self = Wire::connect(&self.peers.clone(), &self.host.clone(), self.port).await?;
            }
            _ => {}
        }
        self.exchange(api, version, body, limit).await
    }

    /// One request and its response, within `limit`.
    async fn exchange<Req: Encodable, Resp: Decodable>(
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

/// Idle connections to other nodes' brokers, kept between the calls of
/// a transaction coordinator and of leaders verifying transactions (each
/// new connection costs a TLS handshake and a login; a PLAIN login costs
/// the other broker a PBKDF2 derivation). One per shard.
#[derive(Default)]
pub struct WirePool {
    idle: RefCell<HashMap<(String, u16), Vec<Wire>>>,
    /// Failed calls, logged at most every ten seconds.
    failures: LogLimit,
}

/// Idle connections kept per broker: a few calls in flight at once reuse
/// them; more open their own and close after.
const IDLE_PER_BROKER: usize = 4;

impl WirePool {
    /// `api` v`version` to the broker at `host:port` on an idle
    /// connection or a new one, within `limit` in all (connect and login
    /// included). An idle connection the broker closed meanwhile is
    /// retried once on a new one. The failure, if any, is logged here
    /// (at most every ten seconds) as `what`.
    #[allow(clippy::too_many_arguments)]
    pub async fn call<Req: Encodable, Resp: Decodable>(
        &self,
        peers: &Rc<Peers>,
        host: &str,
        port: u16,
        api: ApiKey,
        version: i16,
        body: &Req,
        limit: Duration,
        what: &str,
    ) -> Result<Resp, WireError> {
        let key = (host.to_string(), port);
        let exchange = async {
            let idle = self.idle.borrow_mut().get_mut(&key).and_then(Vec::pop);
            if let Some(mut wire) = idle {
                match wire.call(api, version, body, limit).await {
                    Ok(r) => return Ok((r, wire)),
                    Err(WireError::Io(_)) => {} // closed while idle: a new one
                    Err(e) => return Err(e),
                }
            }
            let mut wire = Wire::connect(peers, host, port).await?;
            Ok((wire.call(api, version, body, limit).await?, wire))
        };
        let outcome = within(limit, exchange).await.unwrap_or(Err(WireError::TimedOut));
        match outcome {
            Ok((response, wire)) => {
                let mut idle = self.idle.borrow_mut();
                let kept = idle.entry(key).or_default();
                if kept.len() < IDLE_PER_BROKER {
                    kept.push(wire);
                }
                Ok(response)
            }
            Err(e) => {
                if let Some(more) = self.failures.admit(Instant::now()) {
                    warn!("{what} at {host}:{port}: {e} ({more} more failed calls not logged)");
                }
                Err(e)
            }
        }
    }
}
