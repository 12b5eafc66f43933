//! SASL authentication of one connection, as Kafka's broker does it: what
//! a connection on a SASL listener may send before it authenticates
//! (ApiVersions, SaslHandshake, SaslAuthenticate; anything else closes
//! it), SaslHandshake v0-1 and SaslAuthenticate v0-2, the size-prefixed
//! raw tokens that follow a v0 handshake, and KIP-368's session lifetime
//! (`--connections-max-reauth-ms`) with in-band re-authentication.
//!
//! Runs in the connection's reader on its shard, in request order, so a
//! session changes between two requests and never under one. The
//! exchanges are the `auth` crate's; credentials come from this shard's
//! metadata image (`scram` records), so nothing here crosses cores. PLAIN
//! costs a PBKDF2 derivation on this core (a few milliseconds); the delay
//! after a failure bounds how often one connection can ask for it.
//!
//! Must not: log or echo a token, or let any other request through on a
//! SASL listener before an exchange succeeds or after its session ended.

use std::time::{Duration, Instant};

use auth::{plain, AuthError, SaslMechanism, ScramServer};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use net::codec::Request;
use net::kafka_protocol;

use crate::context::ANONYMOUS;
use crate::listener::SecurityProtocol;
use crate::metadata::MetadataImage;
use crate::response::{respond, HandlerResult, Out};

/// Largest request a connection may send before it authenticates: Kafka's
/// `sasl.server.max.receive.size` (512 KiB). A SASL token is a few hundred
/// bytes; this keeps an unauthenticated client from holding the shard's
/// request budget.
pub const UNAUTHENTICATED_REQUEST_BYTES_MAX: usize = 512 * 1024;

/// Kafka's `connection.failed.authentication.delay.ms` default: a failed
/// exchange is answered, and its connection closed, this much later, so
/// that guessing passwords costs the guesser time.
pub const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// What the connection does with a request, after the session saw it.
pub enum Verdict {
    /// Not the session's: serve it as usual.
    Serve,
    /// The session's answer to a SASL request.
    Answer(HandlerResult),
    /// Answer (`Ok(None)`: nothing), `delay` later, then close: a failed
    /// or out-of-turn exchange. `why` is for the log (never a secret).
    Close { answer: HandlerResult, delay: Duration, why: String },
}

/// One connection's SASL state.
pub struct Session {
    protocol: SecurityProtocol,
    mechanisms: Vec<SaslMechanism>,
    lifetime: Option<Duration>,
    exchange: Exchange,
    /// The authenticated user, its mechanism, and when its session ends.
    user: Option<(String, SaslMechanism, Option<Instant>)>,
    /// Re-authentications (KIP-368) not yet taken by the metrics.
    reauthentications: u64,
}

enum Exchange {
    /// No exchange under way: waiting for a SaslHandshake.
    Idle,
    /// A mechanism chosen; the next token starts it. `raw`: tokens come
    /// size-prefixed without a Kafka header (after a v0 handshake).
    Chosen { mechanism: SaslMechanism, raw: bool },
    /// SCRAM's second round.
    ScramFinal { server: Box<ScramServer>, mechanism: SaslMechanism, raw: bool },
}

/// One token's outcome.
enum Step {
    /// More rounds: this challenge to the client.
    Continue(Vec<u8>),
    /// Authenticated (the session holds the user); this last message to
    /// the client.
    Done(Vec<u8>),
}

impl Session {
    pub fn new(
        protocol: SecurityProtocol,
        mechanisms: &[SaslMechanism],
        lifetime: Option<Duration>,
    ) -> Session {
        Session {
            protocol,
            mechanisms: mechanisms.to_vec(),
            lifetime,
            exchange: Exchange::Idle,
            user: None,
            reauthentications: 0,
        }
    }

    /// Kafka's principal of the connection: `User:NAME` once authenticated.
    pub fn principal(&self) -> String {
        match &self.user {
            Some((name, _, _)) => format!("User:{name}"),
            None => ANONYMOUS.to_string(),
        }
    }

    /// Successful re-authentications since the last call.
    pub fn take_reauthentications(&mut self) -> u64 {
        std::mem::take(&mut self.reauthentications)
    }

    /// Whether requests other than the SASL ones may be served now.
    pub fn authenticated(&self, now: Instant) -> bool {
        if !self.protocol.is_sasl() {
            return true;
        }
        matches!(&self.user, Some((_, _, expires)) if expires.is_none_or(|e| now < e))
    }

    /// Largest request the connection may send now.
    pub fn request_bytes_max(&self, now: Instant) -> Option<usize> {
        (!self.authenticated(now)).then_some(UNAUTHENTICATED_REQUEST_BYTES_MAX)
    }

    /// The next frame is a raw token (a v0 handshake was answered), not a
    /// Kafka request.
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            self.exchange,
            Exchange::Chosen { raw: true, .. } | Exchange::ScramFinal { raw: true, .. }
        )
    }

    /// A raw token after a v0 handshake: answered with a size-prefixed
    /// raw token; a failure closes the connection without an answer, as
    /// Kafka does (v0 has no way to carry an error).
    pub fn raw_token(&mut self, token: &[u8], image: &MetadataImage, now: Instant) -> Verdict {
        match self.step(token, image, now) {
            Ok(Step::Continue(bytes) | Step::Done(bytes)) => {
                let mut frame = BytesMut::with_capacity(4 + bytes.len());
                frame.put_u32(bytes.len() as u32);
                frame.put_slice(&bytes);
                Verdict::Answer(Ok(Some(Out::Frame(frame.freeze()))))
            }
            Err(e) => Verdict::Close {
                answer: Ok(None),
                delay: FAILED_AUTHENTICATION_DELAY,
                why: format!("failed authentication ({e})"),
            },
        }
    }

    /// A decoded request: the session's to answer, or to let through.
    pub fn admit(&mut self, request: &Request, image: &MetadataImage, now: Instant) -> Verdict {
        match request.api {
            ApiKey::SaslHandshake => self.handshake(request),
            ApiKey::SaslAuthenticate => self.authenticate(request, image, now),
            ApiKey::ApiVersions => Verdict::Serve,
            _ if self.authenticated(now) => Verdict::Serve,
            api => {
                let why = if self.user.is_some() {
                    format!("{api:?} after the session expired without re-authentication")
                } else {
                    format!("{api:?} before authentication")
                };
                Verdict::Close { answer: Ok(None), delay: Duration::ZERO, why }
            }
        }
    }

    fn handshake(&mut self, request: &Request) -> Verdict {
        let req: SaslHandshakeRequest = match request.decode_body() {
            Ok(r) => r,
            Err(e) => return Verdict::Answer(Err(e)),
        };
        let enabled: Vec<StrBytes> =
            self.mechanisms.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
        let answer = |error: Option<ResponseError>| {
            let response = SaslHandshakeResponse::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_mechanisms(enabled.clone());
            respond(request, &response)
        };
        if !self.protocol.is_sasl() {
            // Kafka's answer on a listener without SASL; the connection stays.
            return Verdict::Answer(answer(Some(ResponseError::IllegalSaslState)));
        }
        let reauthenticating = self.user.as_ref().map(|(_, m, _)| *m);
        let close = |why: String, error: ResponseError| Verdict::Close {
            answer: answer(Some(error)),
            delay: Duration::ZERO,
            why,
        };
        if !matches!(self.exchange, Exchange::Idle) {
            return close(
                "a SaslHandshake during an exchange".into(),
                ResponseError::IllegalSaslState,
            );
        }
        if reauthenticating.is_some() && request.version == 0 {
            return close(
                "re-authentication with a v0 SaslHandshake (KIP-368 needs v1)".into(),
                ResponseError::IllegalSaslState,
            );
        }
        let asked = req.mechanism.as_str();
        let Some(mechanism) = SaslMechanism::parse(asked).filter(|m| self.mechanisms.contains(m))
        else {
            return close(
                format!("SASL mechanism {asked:?} is not enabled"),
                ResponseError::UnsupportedSaslMechanism,
            );
        };
        if reauthenticating.is_some_and(|previous| previous != mechanism) {
            return close(
                "re-authentication with another SASL mechanism".into(),
                ResponseError::IllegalSaslState,
            );
        }
        self.exchange = Exchange::Chosen { mechanism, raw: request.version == 0 };
        Verdict::Answer(answer(None))
    }

    fn authenticate(&mut self, request: &Request, image: &MetadataImage, now: Instant) -> Verdict {
        let req: SaslAuthenticateRequest = match request.decode_body() {
            Ok(r) => r,
            Err(e) => return Verdict::Answer(Err(e)),
        };
        let answer = |error: Option<(ResponseError, String)>, bytes: Vec<u8>, lifetime_ms: i64| {
            let mut response = SaslAuthenticateResponse::default()
                .with_auth_bytes(Bytes::from(bytes))
                .with_session_lifetime_ms(if request.version >= 1 { lifetime_ms } else { 0 });
            if let Some((e, message)) = error {
                response.error_code = e.code();
                response.error_message = Some(StrBytes::from_string(message));
            }
            respond(request, &response)
        };
        let in_turn = matches!(
            self.exchange,
            Exchange::Chosen { raw: false, .. } | Exchange::ScramFinal { raw: false, .. }
        );
        if !self.protocol.is_sasl() || !in_turn {
            let message = "SaslAuthenticate out of turn".to_string();
            let answer =
                answer(Some((ResponseError::IllegalSaslState, message.clone())), vec![], 0);
            if !self.protocol.is_sasl() {
                return Verdict::Answer(answer);
            }
            return Verdict::Close { answer, delay: Duration::ZERO, why: message };
        }
        match self.step(&req.auth_bytes, image, now) {
            Ok(Step::Continue(bytes)) => Verdict::Answer(answer(None, bytes, 0)),
            Ok(Step::Done(bytes)) => {
                let lifetime_ms = self.lifetime.map_or(0, |l| l.as_millis() as i64);
                Verdict::Answer(answer(None, bytes, lifetime_ms))
            }
            Err(e) => {
                let message = e.to_string();
                Verdict::Close {
                    answer: answer(
                        Some((ResponseError::SaslAuthenticationFailed, message.clone())),
                        vec![],
                        0,
                    ),
                    delay: FAILED_AUTHENTICATION_DELAY,
                    why: format!("failed authentication ({message})"),
                }
            }
        }
    }

    /// Feeds one token to the exchange under way.
    fn step(
        &mut self,
        token: &[u8],
        image: &MetadataImage,
        now: Instant,
    ) -> Result<Step, AuthError> {
        let (mechanism, last, user) = match std::mem::replace(&mut self.exchange, Exchange::Idle) {
            Exchange::Idle => return Err(AuthError::Malformed("no SaslHandshake first".into())),
            Exchange::Chosen { mechanism: SaslMechanism::Plain, .. } => {
                // Any of the user's SCRAM credentials checks the password.
                let user = plain::authenticate(token, |user| {
                    image.scram.get(user).and_then(|of_user| of_user.values().next().cloned())
                })?;
                (SaslMechanism::Plain, Vec::new(), user)
            }
            Exchange::Chosen { mechanism: mechanism @ SaslMechanism::Scram(m), raw } => {
                let mut server = Box::new(ScramServer::new(m));
                let challenge = server
                    .first(token, |user| image.scram.get(user).and_then(|c| c.get(&m)).cloned())?;
                self.exchange = Exchange::ScramFinal { server, mechanism, raw };
                return Ok(Step::Continue(challenge));
            }
            Exchange::ScramFinal { mut server, mechanism, .. } => {
                let (last, user) = server.finish(token)?;
                (mechanism, last, user)
            }
        };
        if let Some((previous, _, _)) = &self.user {
            if previous != &user {
                // KIP-368: a connection keeps its principal.
                return Err(AuthError::Malformed(
                    "re-authentication as another user is not allowed".into(),
                ));
            }
            self.reauthentications += 1;
        }
        self.user = Some((user, mechanism, self.lifetime.map(|l| now + l)));
        Ok(Step::Done(last))
    }
}

#[cfg(test)]
mod tests;
