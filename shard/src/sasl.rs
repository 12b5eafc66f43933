//! SASL authentication of one connection, as Kafka's broker does it: what
//! a connection on a SASL listener may send before it authenticates
//! (ApiVersions, SaslHandshake, SaslAuthenticate; anything else closes
//! it), SaslHandshake v0-1 and SaslAuthenticate v0-2, the size-prefixed
//! raw tokens that follow a v0 handshake, and KIP-368's session lifetime
//! (`--connections-max-reauth-ms`; an OAUTHBEARER session ends with its
//! token in any case) with in-band re-authentication.
//!
//! Runs in the connection's reader on its shard, in request order, so a
//! session changes between two requests and never under one. The
//! exchanges are the `auth` crate's; credentials come from this shard's
//! metadata image (`scram` records), so nothing here crosses cores. PLAIN
//! costs a PBKDF2 derivation on this core (a few milliseconds); the delay
//! after a failure bounds how often one connection can ask for it.
//!
//! Kafka's rules beyond the exchange: one ApiVersions before the
//! handshake (a retry after UNSUPPORTED_VERSION aside); a failed,
//! out-of-turn or unsupported exchange is answered and closed after
//! [`FAILED_AUTHENTICATION_DELAY`]; once logged in, a handshake starts a
//! re-authentication only when sessions have a lifetime and the last login
//! is a second old (else ILLEGAL_SASL_STATE, and the connection stays), so
//! a client cannot make its shard derive keys in a loop.
//!
//! Must not: log or echo a token, or let any other request through on a
//! SASL listener before an exchange succeeds or after its session ended.

use std::rc::Rc;
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

/// Kafka's shortest time between two logins on one connection
/// (`MIN_REAUTH_INTERVAL`): a re-authentication asked sooner is refused.
pub const REAUTHENTICATION_INTERVAL_MIN: Duration = Duration::from_secs(1);

/// PLAIN logins a shard checks per second (and at once, after a quiet
/// spell). Each costs a PBKDF2 derivation on the shard's core (4,096
/// rounds or more, about a millisecond); a failed one costs its client
/// only [`FAILED_AUTHENTICATION_DELAY`], so without a budget a thousand
/// connections guessing passwords would take the core. 100 a second is a
/// tenth of a core at most; past it a login fails (and the client retries
/// with its backoff). SCRAM derives nothing on the server: it is not
/// counted.
pub const PLAIN_LOGINS_PER_SEC: u32 = 100;

/// A shard's budget of PLAIN logins: a token bucket refilled at
/// [`PLAIN_LOGINS_PER_SEC`], holding as many.
pub struct PlainBudget {
    tokens: std::cell::Cell<f64>,
    refilled: std::cell::Cell<Instant>,
}

impl PlainBudget {
    pub fn new(now: Instant) -> PlainBudget {
        let full = f64::from(PLAIN_LOGINS_PER_SEC);
        PlainBudget { tokens: std::cell::Cell::new(full), refilled: std::cell::Cell::new(now) }
    }

    /// Takes one login's worth, if there is one.
    pub fn take(&self, now: Instant) -> bool {
        let full = f64::from(PLAIN_LOGINS_PER_SEC);
        let elapsed = now.saturating_duration_since(self.refilled.get()).as_secs_f64();
        let tokens = (self.tokens.get() + elapsed * full).min(full);
        self.refilled.set(now.max(self.refilled.get()));
        let enough = tokens >= 1.0;
        self.tokens.set(if enough { tokens - 1.0 } else { tokens });
        enough
    }
}

/// Characters of a client's mechanism name a log line repeats.
const LOGGED_NAME_CHARS: usize = 64;

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
    plain_budget: Rc<PlainBudget>,
    mechanisms: Vec<SaslMechanism>,
    lifetime: Option<Duration>,
    exchange: Exchange,
    /// The last successful login, if any.
    login: Option<Login>,
    /// An ApiVersions was answered before the first login.
    versions_asked: bool,
    /// Re-authentications (KIP-368) not yet taken by the metrics.
    reauthentications: u64,
    /// The key set of OAUTHBEARER logins, when the node serves them.
    oauth: Option<Rc<crate::oauth::OAuthKeys>>,
}

struct Login {
    user: String,
    mechanism: SaslMechanism,
    at: Instant,
    /// When the session ends (`None`: never).
    expires: Option<Instant>,
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
        plain_budget: Rc<PlainBudget>,
    ) -> Session {
        Session {
            protocol,
            plain_budget,
            mechanisms: mechanisms.to_vec(),
            lifetime,
            exchange: Exchange::Idle,
            login: None,
            versions_asked: false,
            reauthentications: 0,
            oauth: None,
        }
    }

    /// The session checks OAUTHBEARER logins against `keys`.
    pub fn with_oauth(mut self, keys: Option<Rc<crate::oauth::OAuthKeys>>) -> Session {
        self.oauth = keys;
        self
    }

    /// Kafka's principal of the connection: `User:NAME` once authenticated.
    pub fn principal(&self) -> String {
        match &self.login {
            Some(login) => format!("User:{}", login.user),
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
        matches!(&self.login, Some(l) if l.expires.is_none_or(|e| now < e))
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
        let close = |why: String| Verdict::Close { answer: Ok(None), delay: Duration::ZERO, why };
        match request.api {
            ApiKey::SaslHandshake => self.handshake(request, now),
            ApiKey::SaslAuthenticate => self.authenticate(request, image, now),
            _ if self.authenticated(now) => Verdict::Serve,
            _ if self.login.is_some() => close(format!(
                "{:?} after the session expired without re-authentication",
                request.api
            )),
            // Once before the handshake; a version we do not serve is
            // answered with our versions and does not count (KIP-511).
            ApiKey::ApiVersions
                if matches!(self.exchange, Exchange::Idle) && !self.versions_asked =>
            {
                self.versions_asked = !request.unsupported_api_versions;
                Verdict::Serve
            }
            api => close(format!("{api:?} before authentication")),
        }
    }

    fn handshake(&mut self, request: &Request, now: Instant) -> Verdict {
        let req: SaslHandshakeRequest = match request.decode_body() {
            Ok(r) => r,
            Err(e) => return Verdict::Answer(Err(e)),
        };
        let answer = |error: Option<ResponseError>, mechanisms: Vec<StrBytes>| {
            let response = SaslHandshakeResponse::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_mechanisms(mechanisms);
            respond(request, &response)
        };
        if !self.protocol.is_sasl() {
            // Kafka's answer on a listener without SASL; the connection stays.
            return Verdict::Answer(answer(Some(ResponseError::IllegalSaslState), Vec::new()));
        }
        let enabled: Vec<StrBytes> =
            self.mechanisms.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
        let fail = |why: String, error: ResponseError| Verdict::Close {
            answer: answer(Some(error), enabled.clone()),
            delay: FAILED_AUTHENTICATION_DELAY,
            why,
        };
        if !matches!(self.exchange, Exchange::Idle) {
            return fail(
                "a SaslHandshake during an exchange".into(),
                ResponseError::IllegalSaslState,
            );
        }
        if let Some(login) = &self.login {
            let too_soon = now < login.at + REAUTHENTICATION_INTERVAL_MIN;
            // A session ends with a lifetime or with its token.
            if login.expires.is_none() || too_soon {
                // Not a re-authentication: Kafka answers it as a stray
                // request of a logged-in client.
                return Verdict::Answer(answer(Some(ResponseError::IllegalSaslState), Vec::new()));
            }
            if request.version == 0 {
                return fail(
                    "re-authentication with a v0 SaslHandshake (KIP-368 needs v1)".into(),
                    ResponseError::IllegalSaslState,
                );
            }
        }
        let asked = req.mechanism.as_str();
        let Some(mechanism) = SaslMechanism::parse(asked).filter(|m| self.mechanisms.contains(m))
        else {
            let name: String = asked.chars().take(LOGGED_NAME_CHARS).collect();
            return fail(
                format!("SASL mechanism {name:?} is not enabled"),
                ResponseError::UnsupportedSaslMechanism,
            );
        };
        if self.login.as_ref().is_some_and(|l| l.mechanism != mechanism) {
            return fail(
                "re-authentication with another SASL mechanism".into(),
                ResponseError::IllegalSaslState,
            );
        }
        self.exchange = Exchange::Chosen { mechanism, raw: request.version == 0 };
        Verdict::Answer(answer(None, enabled))
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
        if !in_turn {
            let message = "SaslAuthenticate out of turn".to_string();
            let answer =
                answer(Some((ResponseError::IllegalSaslState, message.clone())), vec![], 0);
            // On a listener without SASL, or between two logins: answered,
            // and the connection stays (Kafka's KafkaApis).
            let stray = !self.protocol.is_sasl()
                || (self.login.is_some() && matches!(self.exchange, Exchange::Idle));
            if stray {
                return Verdict::Answer(answer);
            }
            return Verdict::Close { answer, delay: FAILED_AUTHENTICATION_DELAY, why: message };
        }
        match self.step(&req.auth_bytes, image, now) {
            Ok(Step::Continue(bytes)) => Verdict::Answer(answer(None, bytes, 0)),
            Ok(Step::Done(bytes)) => {
                let expires = self.login.as_ref().and_then(|l| l.expires);
                let lifetime_ms = expires.map_or(0, |e| {
                    let left = e.saturating_duration_since(now).as_millis();
                    left.clamp(1, i64::MAX as u128) as i64
                });
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
        // An OAUTHBEARER token's expiry bounds its session (Kafka's rule).
        let mut token_expires = None;
        let (mechanism, last, user) = match std::mem::replace(&mut self.exchange, Exchange::Idle) {
            Exchange::Idle => return Err(AuthError::Malformed("no SaslHandshake first".into())),
            Exchange::Chosen { mechanism: SaslMechanism::Plain, .. } => {
                if !self.plain_budget.take(now) {
                    return Err(AuthError::Internal(format!(
                        "more than {PLAIN_LOGINS_PER_SEC} PLAIN logins a second on this broker; retry"
                    )));
                }
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
            Exchange::Chosen { mechanism: SaslMechanism::OAuthBearer, .. } => {
                let keys = self.oauth.as_ref().ok_or_else(|| {
                    AuthError::Internal("OAUTHBEARER has no key set on this broker".into())
                })?;
                // A signature check costs up to a millisecond (RSA-8192):
                // bounded with PLAIN's derivations.
                if !self.plain_budget.take(now) {
                    return Err(AuthError::Internal(format!(
                        "more than {PLAIN_LOGINS_PER_SEC} PLAIN or OAUTHBEARER logins a second on this broker; retry"
                    )));
                }
                let token = keys.authenticate(token, now)?;
                // Clients log in again at 85% of a session or later, and
                // not within a second of the last login: a session shorter
                // than 2 s could not be renewed.
                // And at most a year: as good as unbounded, far from
                // `Instant`'s limits.
                let left_ms = token.expires_ms.saturating_sub(unix_now_ms()).max(2000) as u64;
                let left = Duration::from_millis(left_ms).min(Duration::from_secs(365 * 86400));
                token_expires = Some(now + left);
                (SaslMechanism::OAuthBearer, Vec::new(), token.user)
            }
            Exchange::ScramFinal { mut server, mechanism, .. } => {
                let (last, user) = server.finish(token)?;
                (mechanism, last, user)
            }
        };
        if let Some(previous) = &self.login {
            if previous.user != user {
                // KIP-368: a connection keeps its principal.
                return Err(AuthError::Malformed(
                    "re-authentication as another user is not allowed".into(),
                ));
            }
            self.reauthentications += 1;
        }
        // Kafka's rule: a session ends with its token, or with the lifetime
        // if sooner.
        let expires = match (self.lifetime, token_expires) {
            (Some(l), Some(t)) => Some(t.min(now + l)),
            (Some(l), None) => Some(now + l),
            (None, t) => t,
        };
        self.login = Some(Login { user, mechanism, at: now, expires });
        Ok(Step::Done(last))
    }
}

/// Milliseconds since the Unix epoch (a token's times are in them).
fn unix_now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}

#[cfg(test)]
mod tests;
