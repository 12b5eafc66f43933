//! SASL exchanges (auth/): the first input byte picks the mechanism (0
//! PLAIN, 1 SCRAM-SHA-256, 2 SCRAM-SHA-512, modulo 3); the rest is the
//! client's first message, then optionally 0xFF (never in UTF-8) and its
//! final one. The server knows one user, `user` with password `pencil`,
//! salted as RFC 7677's example, and answers with RFC 7677's server nonce,
//! so that the RFC's own messages (the committed seeds) log in and the
//! fuzzer starts from the proof check.
//!
//! Checks beyond "no panic": a login that succeeds is `user`'s, and a
//! SCRAM login answers a server-final message (`v=...`).
#![no_main]

use std::sync::OnceLock;

use auth::scram::{Mechanism, ScramCredential, ScramServer};
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
    match mode % 3 {
        0 => {
            if let Ok(user) = auth::plain::authenticate(first, lookup(Mechanism::ScramSha256)) {
                assert_eq!(user, "user");
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
