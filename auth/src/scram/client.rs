//! The client's side of a SCRAM exchange: what a broker sends when it
//! authenticates to another broker on a SASL listener (Kafka's
//! `sasl.mechanism.inter.broker.protocol`). The messages are those of
//! the module above; this side holds the password and proves it, and
//! checks the server's signature, so a server that does not hold the
//! user's credential is refused as well (SCRAM authenticates both ends).
//!
//! The salted password costs a PBKDF2 derivation; [`SaltedKeys`] keeps
//! the last one, so a broker reconnecting with the same credential does
//! not derive it again while the server's salt and iterations stay.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;

use super::{check_iterations, field, malformed, text, Mechanism};
use crate::{constant_time_eq, random_bytes, AuthError};

/// Random bytes in the client's half of the nonce.
const CLIENT_NONCE_BYTES: usize = 24;

/// A salted password and the salt and iterations it was derived with.
#[derive(Clone)]
pub struct SaltedKeys {
    salt: Vec<u8>,
    iterations: u32,
    salted: Vec<u8>,
}

impl std::fmt::Debug for SaltedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SaltedKeys({} iterations)", self.iterations)
    }
}

/// One exchange: [`ScramClient::new`] gives the client-first message,
/// [`ScramClient::respond`] the client-final one to the server-first,
/// [`ScramClient::verify`] checks the server-final one.
pub struct ScramClient {
    mechanism: Mechanism,
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
    /// The server signature expected, once the final message is sent.
    server_signature: Option<Vec<u8>>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScramClient({})", self.mechanism.name())
    }
}

impl ScramClient {
    /// Starts an exchange for `user`: the client and its client-first
    /// message (`n,,n=USER,r=NONCE`).
    pub fn new(
        mechanism: Mechanism,
        user: &str,
        password: &[u8],
    ) -> Result<(ScramClient, Vec<u8>), AuthError> {
        let nonce = STANDARD_NO_PAD.encode(random_bytes(CLIENT_NONCE_BYTES)?);
        Ok(ScramClient::with_nonce(mechanism, user, password, &nonce))
    }

    /// [`ScramClient::new`] with the nonce given (RFC 7677's exchange is
    /// its test).
    pub fn with_nonce(
        mechanism: Mechanism,
        user: &str,
        password: &[u8],
        nonce: &str,
    ) -> (ScramClient, Vec<u8>) {
        let client_first_bare = format!("n={},r={nonce}", escape(user));
        let first = format!("n,,{client_first_bare}").into_bytes();
        let client = ScramClient {
            mechanism,
            password: password.to_vec(),
            client_nonce: nonce.to_string(),
            client_first_bare,
            server_signature: None,
        };
        (client, first)
    }

    /// Takes the server-first message, answers the client-final one.
    /// `keys` is the last salted password; it is derived again (and
    /// replaced) when the server's salt or iterations differ from it. The
    /// iterations must be within Kafka's bounds, so a server cannot make
    /// this side spin.
    pub fn respond(
        &mut self,
        server_first: &[u8],
        keys: &mut Option<SaltedKeys>,
    ) -> Result<Vec<u8>, AuthError> {
        if self.server_signature.is_some() {
            return Err(malformed("a server-first message out of turn"));
        }
        let server_first = text(server_first)?;
        let mut fields = server_first.split(',');
        if server_first.starts_with("m=") {
            return Err(malformed("a mandatory extension this client does not know"));
        }
        let nonce = field(fields.next(), "r")?;
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(malformed("the server's nonce does not extend the client's"));
        }
        let salt = STANDARD
            .decode(field(fields.next(), "s")?)
            .map_err(|_| malformed("a salt not in base64"))?;
        let iterations: u32 = field(fields.next(), "i")?
            .parse()
            .map_err(|_| malformed("iterations that are not a number"))?;
        check_iterations(self.mechanism, iterations)?;
        if salt.is_empty() {
            return Err(malformed("an empty salt"));
        }
        let m = self.mechanism;
        let fresh = keys.as_ref().is_some_and(|k| k.salt == salt && k.iterations == iterations);
        if !fresh {
            let salted = m.salted_password(&self.password, &salt, iterations);
            *keys = Some(SaltedKeys { salt, iterations, salted });
        }
        let salted = &keys.as_ref().expect("derived above").salted;
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(b"n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = m.hmac(salted, b"Client Key");
        let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = m.hmac(salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks the server-final message: the server proved it holds the
    /// user's credential, or said why it refused (`e=`).
    pub fn verify(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let expected = self
            .server_signature
            .as_ref()
            .ok_or_else(|| malformed("a server-final out of turn"))?;
        let server_final = text(server_final)?;
        if let Some(error) = server_final.strip_prefix("e=") {
            return Err(AuthError::Malformed(format!("the server refused: {error}")));
        }
        let signature = server_final
            .split(',')
            .next()
            .and_then(|v| v.strip_prefix("v="))
            .ok_or_else(|| malformed("no server signature"))?;
        let signature =
            STANDARD.decode(signature).map_err(|_| malformed("a signature not in base64"))?;
        if !constant_time_eq(&signature, expected) {
            return Err(malformed(
                "the server's signature does not match: it does not hold this user's credential",
            ));
        }
        Ok(())
    }
}

/// A user name as a SASL name: `,` as `=2C`, `=` as `=3D`.
fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{RFC_CLIENT_FINAL, RFC_SERVER_FINAL, RFC_SERVER_FIRST};
    use super::*;
    use crate::{ScramCredential, ScramServer};

    #[test]
    fn rfc_7677_exchange_is_sent_byte_for_byte() {
        let (mut client, first) = ScramClient::with_nonce(
            Mechanism::ScramSha256,
            "user",
            b"pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let mut keys = None;
        let last = client.respond(RFC_SERVER_FIRST.as_bytes(), &mut keys).unwrap();
        assert_eq!(String::from_utf8(last).unwrap(), RFC_CLIENT_FINAL);
        client.verify(RFC_SERVER_FINAL.as_bytes()).unwrap();
        let mut forged = RFC_SERVER_FINAL.to_string();
        forged.replace_range(3..4, if &forged[3..4] == "A" { "B" } else { "A" });
        assert!(client.verify(forged.as_bytes()).is_err());
    }

    /// One exchange of the client against the server; the server's
    /// answer to the final message, and whether the client took the
    /// server's.
    fn exchange(
        m: Mechanism,
        user: &str,
        password: &[u8],
        stored: &ScramCredential,
        keys: &mut Option<SaltedKeys>,
    ) -> Result<String, AuthError> {
        let (mut client, first) = ScramClient::new(m, user, password)?;
        let mut server = ScramServer::new(m);
        let server_first = server.first(&first, |_| Some(stored.clone()))?;
        let last = client.respond(&server_first, keys)?;
        let (server_final, who) = server.finish(&last)?;
        client.verify(&server_final)?;
        Ok(who)
    }

    #[test]
    fn the_client_logs_in_to_the_server_and_reuses_its_derivation() {
        for m in Mechanism::ALL {
            let stored = ScramCredential::generate(m, b"pw", super::super::ITERATIONS_MIN).unwrap();
            let mut keys = None;
            assert_eq!(exchange(m, "a,b=c", b"pw", &stored, &mut keys).unwrap(), "a,b=c");
            assert_eq!(exchange(m, "broker", b"pw", &stored, &mut keys).unwrap(), "broker");
            // The kept derivation is what the next login with this salt
            // proves with: spoiled, that login fails...
            keys.as_mut().unwrap().salted[0] ^= 1;
            let spoiled = exchange(m, "broker", b"pw", &stored, &mut keys);
            assert_eq!(spoiled.unwrap_err(), AuthError::InvalidCredentials);
            // ...while another salt derives again.
            let other = ScramCredential::generate(m, b"pw", super::super::ITERATIONS_MIN).unwrap();
            assert_eq!(exchange(m, "broker", b"pw", &other, &mut keys).unwrap(), "broker");
            let mut keys = None;
            let wrong = exchange(m, "broker", b"pW", &stored, &mut keys);
            assert_eq!(wrong.unwrap_err(), AuthError::InvalidCredentials);
        }
    }

    #[test]
    fn a_server_without_the_credential_or_out_of_bounds_is_refused() {
        let m = Mechanism::ScramSha512;
        let (mut client, _) = ScramClient::with_nonce(m, "u", b"pw", "abc");
        let mut keys = None;
        for bad in [
            "r=xyz1,s=c2FsdA==,i=4096",
            "r=abc,s=c2FsdA==,i=4096",
            "r=abcd,s=c2FsdA==,i=100",
            "r=abcd,s=c2FsdA==,i=100000000",
            "r=abcd,s=!!,i=4096",
            "r=abcd,s=,i=4096",
            "m=x,r=abcd,s=c2FsdA==,i=4096",
        ] {
            assert!(client.respond(bad.as_bytes(), &mut keys).is_err(), "{bad}");
        }
        assert!(keys.is_none(), "nothing derived for a message refused");
        assert!(client.verify(b"v=AAAA").is_err(), "a final message before the proof");
        client.respond(b"r=abcd,s=c2FsdA==,i=4096", &mut keys).unwrap();
        assert!(client.verify(b"e=invalid-proof").is_err());
        assert!(client.verify(b"v=AAAA").is_err());
        assert!(client.respond(b"r=abcd,s=c2FsdA==,i=4096", &mut keys).is_err(), "twice");
    }
}
