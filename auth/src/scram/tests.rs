//! RFC 7677's SCRAM-SHA-256 exchange replayed byte for byte, and a client
//! written here from RFC 5802's formulas against the server for both
//! mechanisms, with every way a login must fail.

use super::*;

/// RFC 7677, section 3: user "user", password "pencil".
const RFC_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
pub(super) const RFC_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
pub(super) const RFC_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
pub(super) const RFC_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_credential() -> ScramCredential {
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    ScramCredential::derive(Mechanism::ScramSha256, b"pencil", &salt, 4096).unwrap()
}

#[test]
fn rfc_7677_exchange_is_answered_byte_for_byte() {
    let mut server = ScramServer::new(Mechanism::ScramSha256);
    let lookup = |user: &str| (user == "user").then(rfc_credential);
    let first = server.first_with_nonce(RFC_CLIENT_FIRST.as_bytes(), RFC_SERVER_NONCE, lookup);
    assert_eq!(String::from_utf8(first.unwrap()).unwrap(), RFC_SERVER_FIRST);
    let (last, user) = server.finish(RFC_CLIENT_FINAL.as_bytes()).unwrap();
    assert_eq!(
        (String::from_utf8(last).unwrap().as_str(), user.as_str()),
        (RFC_SERVER_FINAL, "user")
    );
}

#[test]
fn scram_sha_512_answers_what_python_s_hashlib_computes() {
    // The RFC 7677 exchange's messages with SHA-512; the proof and the
    // server signature computed with Python's hashlib.pbkdf2_hmac and hmac,
    // an implementation apart from this one.
    const FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==";
    const SERVER_FINAL: &str = "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw==";
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let stored = ScramCredential::derive(Mechanism::ScramSha512, b"pencil", &salt, 4096).unwrap();
    let mut server = ScramServer::new(Mechanism::ScramSha512);
    server
        .first_with_nonce(RFC_CLIENT_FIRST.as_bytes(), RFC_SERVER_NONCE, |_| Some(stored))
        .unwrap();
    let (last, _) = server.finish(FINAL.as_bytes()).unwrap();
    assert_eq!(String::from_utf8(last).unwrap(), SERVER_FINAL);
}

/// A client's final message from RFC 5802's formulas, with the password.
fn client_final(m: Mechanism, password: &str, client_first: &str, server_first: &str) -> String {
    client_final_with(m, password, client_first, server_first, "")
}

/// [`client_final`] with `extra` (extensions) between the nonce and the proof.
fn client_final_with(
    m: Mechanism,
    password: &str,
    client_first: &str,
    server_first: &str,
    extra: &str,
) -> String {
    let nonce = server_first.split(',').next().unwrap().strip_prefix("r=").unwrap();
    client_final_sending(m, password, client_first, server_first, &format!("{nonce}{extra}"))
}

/// [`client_final`] sending `nonce_and_extra` after `r=`.
fn client_final_sending(
    m: Mechanism,
    password: &str,
    client_first: &str,
    server_first: &str,
    nonce_and_extra: &str,
) -> String {
    let bare = client_first.splitn(3, ',').nth(2).unwrap();
    let gs2 = &client_first[..client_first.len() - bare.len()];
    let salt = STANDARD.decode(server_first.split(',').nth(1).unwrap().strip_prefix("s=").unwrap());
    let iterations: u32 = server_first.split(',').nth(2).unwrap()[2..].parse().unwrap();
    let salted = m.salted_password(password.as_bytes(), &salt.unwrap(), iterations);
    let client_key = m.hmac(&salted, b"Client Key");
    let without_proof = format!("c={},r={nonce_and_extra}", STANDARD.encode(gs2));
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
    format!("{without_proof},p={}", STANDARD.encode(proof))
}

/// One login: the server's answer to the client-final message.
fn login(
    m: Mechanism,
    stored: &ScramCredential,
    client_first: &str,
    password: &str,
) -> Result<(Vec<u8>, String), AuthError> {
    let mut server = ScramServer::new(m);
    let first = server.first(client_first.as_bytes(), |_| Some(stored.clone()))?;
    let last = client_final(m, password, client_first, std::str::from_utf8(&first).unwrap());
    server.finish(last.as_bytes())
}

#[test]
fn both_mechanisms_log_in_with_the_password_and_only_with_it() {
    for m in Mechanism::ALL {
        let stored = ScramCredential::generate(m, b"s3cret", ITERATIONS_MIN).unwrap();
        let (last, user) = login(m, &stored, "n,,n=alice,r=abcdef", "s3cret").unwrap();
        assert_eq!(user, "alice");
        assert!(last.starts_with(b"v="), "{}", m.name());
        let wrong = login(m, &stored, "n,,n=alice,r=abcdef", "s3cret!");
        assert_eq!(wrong.unwrap_err(), AuthError::InvalidCredentials, "{}", m.name());
        assert!(stored.matches_password(b"s3cret") && !stored.matches_password(b"S3cret"));
    }
}

#[test]
fn a_final_nonce_must_end_with_the_server_s_as_kafka_checks_it() {
    let m = Mechanism::ScramSha256;
    let stored = ScramCredential::generate(m, b"pw", ITERATIONS_MIN).unwrap();
    let first = "n,,n=alice,r=abc";
    // Equal (RFC 5802); librdkafka 2.0's, its own nonce again in front;
    // then a suffix, and the client's half alone.
    for (sent, ok) in [("{}", true), ("abc{}", true), ("{}x", false), ("abc", false)] {
        let mut server = ScramServer::new(m);
        let server_first = server.first(first.as_bytes(), |_| Some(stored.clone())).unwrap();
        let server_first = String::from_utf8(server_first).unwrap();
        let full = server_first.split(',').next().unwrap().strip_prefix("r=").unwrap();
        let nonce = sent.replace("{}", full);
        let last = client_final_sending(m, "pw", first, &server_first, &nonce);
        let result = server.finish(last.as_bytes());
        assert_eq!(result.is_ok(), ok, "{sent}: {result:?}");
    }
}

#[test]
fn what_an_admin_client_sends_makes_a_credential_of_the_password() {
    for m in Mechanism::ALL {
        let sent = SaltedPassword::new(m, b"pw", ITERATIONS_MIN).unwrap();
        let stored = ScramCredential::from_salted_password(
            m,
            &sent.salt,
            &sent.salted_password,
            ITERATIONS_MIN,
        )
        .unwrap();
        assert!(stored.matches_password(b"pw") && !stored.matches_password(b"pW"));
        assert!(SaltedPassword::new(m, b"pw", 100).is_err());
    }
}

#[test]
fn two_credentials_of_one_password_differ_by_their_salt() {
    let a = ScramCredential::generate(Mechanism::ScramSha512, b"pw", ITERATIONS_MIN).unwrap();
    let b = ScramCredential::generate(Mechanism::ScramSha512, b"pw", ITERATIONS_MIN).unwrap();
    assert_ne!(a.salt, b.salt);
    assert_ne!(a.stored_key, b.stored_key);
    assert_eq!((a.stored_key.len(), a.server_key.len()), (64, 64));
}

#[test]
fn unknown_users_and_other_mechanisms_credentials_fail_as_bad_passwords() {
    let mut server = ScramServer::new(Mechanism::ScramSha256);
    let unknown = server.first(b"n,,n=nobody,r=x", |_| None);
    assert_eq!(unknown.unwrap_err(), AuthError::InvalidCredentials);
    let sha512 = ScramCredential::generate(Mechanism::ScramSha512, b"pw", ITERATIONS_MIN).unwrap();
    let mut server = ScramServer::new(Mechanism::ScramSha256);
    let other = server.first(b"n,,n=alice,r=x", |_| Some(sha512));
    assert_eq!(other.unwrap_err(), AuthError::InvalidCredentials);
}

#[test]
fn names_are_unescaped_and_authorization_ids_must_be_the_user() {
    let stored = ScramCredential::generate(Mechanism::ScramSha256, b"pw", ITERATIONS_MIN).unwrap();
    let mut seen = String::new();
    let mut server = ScramServer::new(Mechanism::ScramSha256);
    server
        .first(b"n,,n=a=2Cb=3Dc,r=x", |u| {
            seen = u.to_string();
            Some(stored.clone())
        })
        .unwrap();
    assert_eq!(seen, "a,b=c");
    let (_, user) = login(Mechanism::ScramSha256, &stored, "n,a=bob,n=bob,r=n1", "pw").unwrap();
    assert_eq!(user, "bob");
    let (_, user) = login(Mechanism::ScramSha256, &stored, "y,,n=bob,r=n1", "pw").unwrap();
    assert_eq!(user, "bob", "y: a client that could bind, to a server that cannot");
    let (_, user) = login(Mechanism::ScramSha256, &stored, "n,a=a=2Cb,n=a=2Cb,r=n1", "pw").unwrap();
    assert_eq!(user, "a,b", "an escaped authorization id");
    let (_, user) =
        login(Mechanism::ScramSha256, &stored, "n,,n=bob,r=n1,ext=1,other=", "pw").unwrap();
    assert_eq!(user, "bob", "extensions are taken and ignored");
    for bad in [
        "y,a=eve,n=bob,r=n1",
        "n,junk,n=bob,r=n1",
        "n,,n=bob,r=n1,tokenauth=TRUE",
        "n,,n=bob,r=n1,=v",
        "n,,n=bob,r=n1,noequals",
        "n,,n=bob,r=n1,k1=v",
        "n,,n=bob,r=a b",
        "n,,n=bob,r=a\u{7f}",
        "n,a=eve,n=bob,r=n1",
        "n,,n=b=4Fb,r=n1",
        "n,,n=,r=n1",
        "p=tls-unique,,n=bob,r=n1",
        "n,,n=bob,r=n1,tokenauth=true",
        "n,,n=bob",
        "n,,r=n1,n=bob",
        "n,,n=bob,r=",
    ] {
        let got = login(Mechanism::ScramSha256, &stored, bad, "pw");
        assert!(matches!(got, Err(AuthError::Malformed(_))), "{bad}: {got:?}");
    }
}

#[test]
fn tampered_or_out_of_turn_final_messages_fail() {
    let m = Mechanism::ScramSha256;
    let stored = rfc_credential();
    let run = |edit: &dyn Fn(String) -> String| {
        let mut server = ScramServer::new(m);
        let first = server.first(b"n,,n=user,r=abc", |_| Some(stored.clone())).unwrap();
        let last =
            client_final(m, "pencil", "n,,n=user,r=abc", std::str::from_utf8(&first).unwrap());
        server.finish(edit(last).as_bytes())
    };
    assert!(run(&|s| s).is_ok());
    // Another nonce, another binding, a proof cut short, none at all.
    assert!(matches!(run(&|s| s.replacen("r=abc", "r=abd", 1)), Err(AuthError::Malformed(_))));
    assert!(matches!(run(&|s| s.replacen("c=biws", "c=eSws", 1)), Err(AuthError::Malformed(_))));
    let short = |s: String| s[..s.len() - 8].to_string() + "AAAA";
    assert_eq!(run(&short).unwrap_err(), AuthError::InvalidCredentials);
    assert!(matches!(
        run(&|s| s.split(",p=").next().unwrap().to_string()),
        Err(AuthError::Malformed(_))
    ));

    let mut server = ScramServer::new(m);
    assert!(server.finish(b"c=biws,r=abc,p=AAAA").is_err(), "final before first");
    let mut server = ScramServer::new(m);
    server.first(b"n,,n=user,r=abc", |_| Some(stored.clone())).unwrap();
    assert!(server.first(b"n,,n=user,r=abc", |_| Some(stored.clone())).is_err(), "first twice");
}

#[test]
fn client_final_extensions_are_part_of_what_the_proof_signs() {
    let m = Mechanism::ScramSha256;
    let stored = rfc_credential();
    let exchange = |drop_extension: bool| {
        let mut server = ScramServer::new(m);
        let first = server.first(b"n,,n=user,r=abc", |_| Some(stored.clone())).unwrap();
        let first = std::str::from_utf8(&first).unwrap();
        let last = client_final_with(m, "pencil", "n,,n=user,r=abc", first, ",ext=1");
        let last = if drop_extension { last.replacen(",ext=1", "", 1) } else { last };
        server.finish(last.as_bytes())
    };
    assert!(exchange(false).is_ok());
    assert_eq!(exchange(true).unwrap_err(), AuthError::InvalidCredentials);
}

#[test]
fn a_stored_credential_outside_kafka_s_iterations_is_never_used() {
    let mut stored = rfc_credential();
    stored.iterations = u32::MAX;
    assert!(!stored.matches_password(b"pencil"), "no check runs at all");
    let mut server = ScramServer::new(Mechanism::ScramSha256);
    let got = server.first(b"n,,n=user,r=abc", |_| Some(stored.clone()));
    assert_eq!(got.unwrap_err(), AuthError::InvalidCredentials);
}

#[test]
fn iterations_outside_kafka_s_bounds_and_huge_messages_are_refused() {
    let m = Mechanism::ScramSha256;
    assert!(ScramCredential::derive(m, b"pw", b"salt", ITERATIONS_MIN - 1).is_err());
    assert!(ScramCredential::derive(m, b"pw", b"salt", ITERATIONS_MAX + 1).is_err());
    let huge = format!("n,,n={},r=x", "u".repeat(MESSAGE_BYTES_MAX));
    let mut server = ScramServer::new(m);
    assert!(matches!(server.first(huge.as_bytes(), |_| None), Err(AuthError::Malformed(_))));
    let mut server = ScramServer::new(m);
    assert!(matches!(server.first(&[0xff, 0xfe], |_| None), Err(AuthError::Malformed(_))));
}

#[test]
fn a_credential_never_prints_its_keys() {
    let c = rfc_credential();
    assert_eq!(format!("{c:?}"), "ScramCredential(SCRAM-SHA-256, 4096 iterations)");
    assert_eq!(Mechanism::parse("SCRAM-SHA-512"), Some(Mechanism::ScramSha512));
    assert_eq!(Mechanism::parse("scram-sha-512"), None);
}
