//! SASL PLAIN (RFC 4616) as Kafka serves it: one message,
//! `AUTHZID NUL USER NUL PASSWORD`, the authorization id empty or the
//! user itself. The password is checked against the user's stored SCRAM
//! credential (either mechanism's), so PLAIN needs no second store of
//! secrets. Only over TLS does PLAIN keep the password from the network;
//! that is the operator's choice of listener, as in Kafka.
//!
//! Each attempt costs a PBKDF2 derivation (4,096 to 16,384 HMAC rounds),
//! also for an unknown user (against a stand-in credential), so that the
//! time taken does not tell which users exist. The connection layer bounds
//! the attempts (Kafka's delay after a failed one).

use crate::{AuthError, ScramCredential};

/// Longest PLAIN message taken. RFC 4616's 255 bytes per field is what a
/// server must at least take; Kafka takes what a request can carry. 16 KiB
/// is far beyond any name and password.
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024;

/// The message a client sends: no authorization id, the user, the
/// password.
pub fn client_message(user: &str, password: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(2 + user.len() + password.len());
    message.push(0);
    message.extend_from_slice(user.as_bytes());
    message.push(0);
    message.extend_from_slice(password);
    message
}

/// Checks a PLAIN message; answers the authenticated user. `credential`
/// finds a stored credential of the user, if any.
pub fn authenticate(
    message: &[u8],
    credential: impl FnOnce(&str) -> Option<ScramCredential>,
) -> Result<String, AuthError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(AuthError::Malformed("a PLAIN message longer than any valid one".into()));
    }
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("expected authzid, username and password".into()));
    };
    let user = std::str::from_utf8(user)
        .map_err(|_| AuthError::Malformed("a user name not in UTF-8".into()))?;
    if user.is_empty() || password.is_empty() {
        return Err(AuthError::Malformed("username and password must not be empty".into()));
    }
    if !authzid.is_empty() && authzid != user.as_bytes() {
        return Err(AuthError::Malformed(
            "Client requested an authorization id that is different from username".into(),
        ));
    }
    match credential(user) {
        Some(c) if c.matches_password(password) => Ok(user.to_string()),
        Some(_) => Err(AuthError::InvalidCredentials),
        None => {
            // Kept from the optimizer: its time is the point.
            std::hint::black_box(stand_in().matches_password(std::hint::black_box(password)));
            Err(AuthError::InvalidCredentials)
        }
    }
}

/// The credential an unknown user's password is checked against: the same
/// work as a known user's at Kafka's default iterations, never matching.
fn stand_in() -> ScramCredential {
    let mechanism = crate::Mechanism::ScramSha256;
    ScramCredential {
        mechanism,
        salt: vec![0; crate::scram::SALT_BYTES],
        iterations: crate::scram::ITERATIONS_MIN,
        stored_key: vec![0; 32],
        server_key: vec![0; 32],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scram::{Mechanism, ITERATIONS_MIN};

    #[test]
    fn the_password_of_the_stored_credential_logs_in_and_nothing_else() {
        let stored =
            ScramCredential::generate(Mechanism::ScramSha256, b"pw", ITERATIONS_MIN).unwrap();
        let lookup = |user: &str| (user == "alice").then(|| stored.clone());
        assert_eq!(authenticate(b"\0alice\0pw", lookup).unwrap(), "alice");
        assert_eq!(authenticate(&client_message("alice", b"pw"), lookup).unwrap(), "alice");
        assert_eq!(authenticate(b"alice\0alice\0pw", lookup).unwrap(), "alice");
        assert_eq!(authenticate(b"\0alice\0pW", lookup), Err(AuthError::InvalidCredentials));
        assert_eq!(authenticate(b"\0bob\0pw", lookup), Err(AuthError::InvalidCredentials));
        for bad in [
            &b"bob\0alice\0pw"[..],
            b"\0alice",
            b"\0alice\0pw\0more",
            b"\0\0pw",
            b"\0alice\0",
            b"\0\xff\0pw",
        ] {
            assert!(matches!(authenticate(bad, lookup), Err(AuthError::Malformed(_))), "{bad:?}");
        }
        let huge = [b'a'; MESSAGE_BYTES_MAX + 1];
        assert!(matches!(authenticate(&huge, lookup), Err(AuthError::Malformed(_))));
    }
}
