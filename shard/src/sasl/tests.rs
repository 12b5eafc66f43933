//! The session's rules, request by request, with PLAIN (SCRAM's exchange
//! is the auth crate's test; real clients run both in tests/broker).

use super::*;
use auth::{Mechanism, ScramCredential};
use kafka_protocol::protocol::{Decodable, Encodable};
use net::codec::{decode_request, encode_request};

use crate::metadata::MetadataRecord;

const HOUR: Duration = Duration::from_secs(3600);

fn image() -> MetadataImage {
    let credential = |password: &[u8]| {
        ScramCredential::generate(Mechanism::ScramSha256, password, auth::scram::ITERATIONS_MIN)
            .unwrap()
    };
    MetadataImage::default().applied(&[
        MetadataRecord::Scram { user: "alice".into(), credential: credential(b"alice-secret") },
        MetadataRecord::Scram { user: "bob".into(), credential: credential(b"bob-secret") },
    ])
}

fn request<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Request {
    let frame = encode_request(api, version, 7, "test", body).unwrap();
    decode_request(Bytes::from(frame).slice(4..)).unwrap()
}

fn handshake(version: i16, mechanism: &'static str) -> Request {
    let body = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    request(ApiKey::SaslHandshake, version, &body)
}

fn authenticate(version: i16, token: &[u8]) -> Request {
    let body = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    request(ApiKey::SaslAuthenticate, version, &body)
}

fn metadata() -> Request {
    request(ApiKey::Metadata, 12, &kafka_protocol::messages::MetadataRequest::default())
}

/// The response body in a frame the session answered.
fn body<T: Decodable>(api: ApiKey, version: i16, answer: HandlerResult) -> T {
    let Ok(Some(Out::Frame(frame))) = answer else { panic!("no frame") };
    let mut rest = frame.slice(4..);
    let header_version = api.response_header_version(version);
    kafka_protocol::messages::ResponseHeader::decode(&mut rest, header_version).unwrap();
    T::decode(&mut rest, version).unwrap()
}

fn answered(verdict: Verdict) -> HandlerResult {
    match verdict {
        Verdict::Answer(a) => a,
        Verdict::Serve => panic!("served"),
        Verdict::Close { why, .. } => panic!("closed: {why}"),
    }
}

fn closed(verdict: Verdict) -> (HandlerResult, Duration, String) {
    match verdict {
        Verdict::Close { answer, delay, why } => (answer, delay, why),
        _ => panic!("not closed"),
    }
}

fn budget() -> Rc<PlainBudget> {
    Rc::new(PlainBudget::new(Instant::now()))
}

fn sasl(lifetime: Option<Duration>) -> Session {
    Session::new(SecurityProtocol::SaslPlaintext, &SaslMechanism::ALL, lifetime, budget())
}

fn plain_login(
    s: &mut Session,
    image: &MetadataImage,
    now: Instant,
    user: &str,
    pw: &str,
) -> Verdict {
    let _ = answered(s.admit(&handshake(1, "PLAIN"), image, now));
    s.admit(&authenticate(2, format!("\0{user}\0{pw}").as_bytes()), image, now)
}

#[test]
fn nothing_but_api_versions_and_sasl_before_authentication() {
    let (image, now) = (image(), Instant::now());
    let mut s = sasl(None);
    assert!(!s.authenticated(now));
    assert_eq!(s.request_bytes_max(now), Some(UNAUTHENTICATED_REQUEST_BYTES_MAX));
    let versions =
        request(ApiKey::ApiVersions, 3, &kafka_protocol::messages::ApiVersionsRequest::default());
    assert!(matches!(s.admit(&versions, &image, now), Verdict::Serve));
    let (answer, delay, why) = closed(s.admit(&metadata(), &image, now));
    assert!(matches!(answer, Ok(None)) && delay.is_zero(), "{why}");
    assert!(why.contains("before authentication"), "{why}");
}

#[test]
fn one_api_versions_before_the_handshake_as_kafka_allows() {
    let (image, now) = (image(), Instant::now());
    let versions = |v| {
        request(ApiKey::ApiVersions, v, &kafka_protocol::messages::ApiVersionsRequest::default())
    };
    let mut s = sasl(None);
    // A version we do not serve is answered (KIP-511) and does not count.
    let mut newer = versions(3);
    newer.unsupported_api_versions = true;
    assert!(matches!(s.admit(&newer, &image, now), Verdict::Serve));
    assert!(matches!(s.admit(&versions(3), &image, now), Verdict::Serve));
    let (_, _, why) = closed(s.admit(&versions(3), &image, now));
    assert!(why.contains("ApiVersions before authentication"), "{why}");
    // After the handshake, only the exchange.
    let mut s = sasl(None);
    let _ = answered(s.admit(&handshake(1, "PLAIN"), &image, now));
    let _ = closed(s.admit(&versions(3), &image, now));
}

#[test]
fn plain_with_the_stored_scram_secret_authenticates_and_names_the_principal() {
    let (image, now) = (image(), Instant::now());
    let mut s = sasl(Some(HOUR));
    let r: SaslAuthenticateResponse = body(
        ApiKey::SaslAuthenticate,
        2,
        answered(plain_login(&mut s, &image, now, "alice", "alice-secret")),
    );
    assert_eq!(r.error_code, 0);
    assert_eq!(r.session_lifetime_ms, 3_600_000);
    assert!(s.authenticated(now));
    assert_eq!(s.principal(), "User:alice");
    assert_eq!(s.request_bytes_max(now), None);
    assert!(matches!(s.admit(&metadata(), &image, now), Verdict::Serve));
}

#[test]
fn a_wrong_password_is_answered_late_and_closes() {
    let (image, now) = (image(), Instant::now());
    for (user, pw) in [("alice", "bob-secret"), ("carol", "anything")] {
        let mut s = sasl(None);
        let (answer, delay, why) = closed(plain_login(&mut s, &image, now, user, pw));
        let r: SaslAuthenticateResponse = body(ApiKey::SaslAuthenticate, 2, answer);
        assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
        // The same words for an unknown user as for a wrong password.
        assert_eq!(
            r.error_message.as_deref(),
            Some("Authentication failed: Invalid username or password")
        );
        assert_eq!(delay, FAILED_AUTHENTICATION_DELAY);
        assert!(why.starts_with("failed authentication"), "{why}");
        assert!(!s.authenticated(now));
    }
}

#[test]
fn a_mechanism_not_enabled_is_refused_with_the_enabled_ones() {
    let (image, now) = (image(), Instant::now());
    let only_scram = [SaslMechanism::Scram(Mechanism::ScramSha512)];
    let mut s = Session::new(SecurityProtocol::SaslPlaintext, &only_scram, None, budget());
    let (answer, delay, _) = closed(s.admit(&handshake(1, "PLAIN"), &image, now));
    assert_eq!(delay, FAILED_AUTHENTICATION_DELAY);
    let r: SaslHandshakeResponse = body(ApiKey::SaslHandshake, 1, answer);
    assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
    assert_eq!(r.mechanisms, vec![StrBytes::from_static_str("SCRAM-SHA-512")]);
    let mut s = sasl(None);
    let (answer, _, _) = closed(s.admit(&handshake(1, "GSSAPI"), &image, now));
    let r: SaslHandshakeResponse = body(ApiKey::SaslHandshake, 1, answer);
    assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
}

#[test]
fn a_listener_without_sasl_answers_illegal_state_and_serves_everything() {
    let (image, now) = (image(), Instant::now());
    let mut s = Session::new(SecurityProtocol::Plaintext, &SaslMechanism::ALL, None, budget());
    assert!(s.authenticated(now));
    assert_eq!(s.principal(), "User:ANONYMOUS");
    let r: SaslHandshakeResponse =
        body(ApiKey::SaslHandshake, 1, answered(s.admit(&handshake(1, "PLAIN"), &image, now)));
    assert_eq!(r.error_code, ResponseError::IllegalSaslState.code());
    assert!(r.mechanisms.is_empty());
    let r: SaslAuthenticateResponse =
        body(ApiKey::SaslAuthenticate, 2, answered(s.admit(&authenticate(2, b"x"), &image, now)));
    assert_eq!(r.error_code, ResponseError::IllegalSaslState.code());
    assert!(matches!(s.admit(&metadata(), &image, now), Verdict::Serve));
}

#[test]
fn a_v0_handshake_takes_raw_tokens() {
    let (image, now) = (image(), Instant::now());
    let mut s = sasl(None);
    let _ = answered(s.admit(&handshake(0, "PLAIN"), &image, now));
    assert!(s.expects_raw_token());
    let answer = answered(s.raw_token(b"\0alice\0alice-secret", &image, now));
    let Ok(Some(Out::Frame(frame))) = answer else { panic!("no frame") };
    assert_eq!(&frame[..], &[0, 0, 0, 0], "PLAIN's empty answer, size-prefixed");
    assert!(!s.expects_raw_token() && s.authenticated(now));
    let mut s = sasl(None);
    let _ = answered(s.admit(&handshake(0, "PLAIN"), &image, now));
    let (answer, delay, _) = closed(s.raw_token(b"\0alice\0wrong", &image, now));
    assert!(matches!(answer, Ok(None)) && delay == FAILED_AUTHENTICATION_DELAY);
}

#[test]
fn out_of_turn_messages_close() {
    let (image, now) = (image(), Instant::now());
    let mut s = sasl(None);
    let (_, _, why) = closed(s.admit(&authenticate(2, b"\0alice\0alice-secret"), &image, now));
    assert!(why.contains("out of turn"), "{why}");
    let mut s = sasl(None);
    let _ = answered(s.admit(&handshake(1, "PLAIN"), &image, now));
    let (_, _, why) = closed(s.admit(&handshake(1, "PLAIN"), &image, now));
    assert!(why.contains("during an exchange"), "{why}");
}

#[test]
fn an_expired_session_must_reauthenticate_as_the_same_user() {
    let (image, now) = (image(), Instant::now());
    let second = Duration::from_secs(1);
    let mut s = sasl(Some(second));
    let _ = answered(plain_login(&mut s, &image, now, "alice", "alice-secret"));
    let later = now + 2 * second;
    assert!(!s.authenticated(later));
    let (_, _, why) = closed(s.admit(&metadata(), &image, later));
    assert!(why.contains("expired"), "{why}");

    // In band, on the same connection: the same user again.
    let mut s = sasl(Some(second));
    let _ = answered(plain_login(&mut s, &image, now, "alice", "alice-secret"));
    assert_eq!(s.take_reauthentications(), 0);
    let _ = answered(plain_login(&mut s, &image, later, "alice", "alice-secret"));
    assert_eq!(s.take_reauthentications(), 1);
    assert!(s.authenticated(later + second / 2));
    assert!(matches!(s.admit(&metadata(), &image, later), Verdict::Serve));
    // Another user, another mechanism, or a v0 handshake: closed.
    let even_later = later + 2 * second;
    let (_, _, why) = closed(plain_login(&mut s, &image, even_later, "bob", "bob-secret"));
    assert!(why.contains("another user"), "{why}");
    let mut s = sasl(Some(second));
    let _ = answered(plain_login(&mut s, &image, now, "alice", "alice-secret"));
    let (_, _, why) = closed(s.admit(&handshake(1, "SCRAM-SHA-256"), &image, later));
    assert!(why.contains("another SASL mechanism"), "{why}");
    let mut s = sasl(Some(second));
    let _ = answered(plain_login(&mut s, &image, now, "alice", "alice-secret"));
    let (_, _, why) = closed(s.admit(&handshake(0, "PLAIN"), &image, later));
    assert!(why.contains("v0"), "{why}");
}

#[test]
fn a_handshake_that_is_no_reauthentication_is_answered_and_the_connection_stays() {
    let (image, now) = (image(), Instant::now());
    // Sessions without a lifetime, and a login less than a second old:
    // no key derivation in a loop.
    for (lifetime, at) in [(None, now + HOUR), (Some(HOUR), now + Duration::from_millis(500))] {
        let mut s = sasl(lifetime);
        let _ = answered(plain_login(&mut s, &image, now, "alice", "alice-secret"));
        let r: SaslHandshakeResponse =
            body(ApiKey::SaslHandshake, 1, answered(s.admit(&handshake(1, "PLAIN"), &image, at)));
        assert_eq!(r.error_code, ResponseError::IllegalSaslState.code());
        let token = authenticate(2, b"\0alice\0alice-secret");
        let r: SaslAuthenticateResponse =
            body(ApiKey::SaslAuthenticate, 2, answered(s.admit(&token, &image, at)));
        assert_eq!(r.error_code, ResponseError::IllegalSaslState.code());
        assert!(matches!(s.admit(&metadata(), &image, at), Verdict::Serve));
        assert_eq!(s.take_reauthentications(), 0);
    }
}

#[test]
fn plain_logins_past_the_shard_s_budget_fail_until_it_refills() {
    let (image, now) = (image(), Instant::now());
    let shared = Rc::new(PlainBudget::new(now));
    let login = |at: Instant| {
        let mut s = Session::new(
            SecurityProtocol::SaslPlaintext,
            &SaslMechanism::ALL,
            None,
            shared.clone(),
        );
        plain_login(&mut s, &image, at, "alice", "wrong")
    };
    // Wrong passwords spend the budget as right ones do.
    for _ in 0..PLAIN_LOGINS_PER_SEC {
        let (_, _, why) = closed(login(now));
        assert!(why.contains("Invalid username or password"), "{why}");
    }
    let (_, _, why) = closed(login(now));
    assert!(why.contains("PLAIN logins a second"), "{why}");
    // A hundredth of a second later, one more.
    let later = now + Duration::from_millis(10);
    let (_, _, why) = closed(login(later));
    assert!(why.contains("Invalid username or password"), "{why}");
    let (_, _, why) = closed(login(later));
    assert!(why.contains("PLAIN logins a second"), "{why}");
}
