//! SASL exchanges (auth/): the first input byte picks the side and
//! mechanism (0 PLAIN, 1 SCRAM-SHA-256, 2 SCRAM-SHA-512 servers; 3
//! SCRAM-SHA-256, 4 SCRAM-SHA-512 clients; 5 an OAUTHBEARER server, its
//! key set one P-256 key with id `k1`; modulo 6); the rest is the
//! peer's first message, then optionally 0xFF (never in UTF-8) and its
//! final one. A client is `user` with `pencil` and RFC 7677's client
//! nonce, so the RFC's server messages are answered. The server knows one user, `user` with password `pencil`,
//! salted as RFC 7677's example, and answers with RFC 7677's server nonce,
//! so that the RFC's own messages (the committed seeds) log in and the
//! fuzzer starts from the proof check.
//!
//! Checks beyond "no panic": a login that succeeds is `user`'s, and a
//! SCRAM login answers a server-final message (`v=...`).
#![no_main]

use std::sync::OnceLock;

use auth::scram::{Mechanism, ScramClient, ScramCredential, ScramServer};
use libfuzzer_sys::fuzz_target;

const RFC_SALT: &[u8] = &[
    0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81,
];
const RFC_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

/// The user's credentials, derived once (4,096 PBKDF2 rounds each).
fn credentials() -> &'static [ScramCredential; 2] {
    static CREDENTIALS: OnceLock<[ScramCredential; 2]> = OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        Mechanism::ALL.map(|m| ScramCredential::derive(m, b"pencil", RFC_SALT, 4096).unwrap())
    })
}

fn lookup(m: Mechanism) -> impl Fn(&str) -> Option<ScramCredential> {
    move |user| (user == "user").then(|| credentials()[m as usize].clone())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (first, last) = match rest.iter().position(|&b| b == 0xff) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let last_message = last;
    match mode % 6 {
        5 => {
            static JWKS: OnceLock<auth::oauth::Jwks> = OnceLock::new();
            let jwks = JWKS.get_or_init(|| {
                let x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
                let y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
                let json = format!(
                    r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","x":"{x}","y":"{y}"}}]}}"#
                );
                auth::oauth::Jwks::parse(json.as_bytes()).unwrap()
            });
            let expect = auth::oauth::Expectations::default();
            // A forged token never logs in: the fuzzer holds no key.
            assert!(auth::oauth::authenticate(rest, jwks, &expect, 1_800_000_000_000).is_err());
        }
        0 => {
            if let Ok(user) = auth::plain::authenticate(first, lookup(Mechanism::ScramSha256)) {
                assert_eq!(user, "user");
            }
        }
        m @ (3 | 4) => {
            let m = Mechanism::ALL[usize::from(m) - 3];
            let (mut client, _) = ScramClient::with_nonce(m, "user", b"pencil", "rOprNGfwEbeRWgbNEkqO");
            let mut keys = None;
            let Ok(last) = client.respond(first, &mut keys) else { return };
            assert!(last.starts_with(b"c=biws,r=rOprNGfwEbeRWgbNEkqO"));
            if let Some(server_final) = last_message {
                let _ = client.verify(server_final);
            }
        }
        m => {
            let m = Mechanism::ALL[usize::from(m) - 1];
            let mut server = ScramServer::new(m);
            let Ok(_) = server.first_with_nonce(first, RFC_SERVER_NONCE, lookup(m)) else { return };
            if let Some(last) = last {
                if let Ok((answer, user)) = server.finish(last) {
                    assert_eq!(user, "user");
                    assert!(answer.starts_with(b"v="));
                }
            }
        }
    }
});
