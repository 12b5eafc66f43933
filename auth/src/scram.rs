//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), as Kafka serves
//! them over SaslAuthenticate: the server's side of the two round trips,
//! and the salted credential it checks; the client's side is [`client`]'s.
//!
//! The exchange (every message UTF-8, fields `k=v` joined by commas):
//! - client-first: a GS2 header (`n,,` or `n,a=AUTHZID,`, or `y` for `n`:
//!   a client that could bind but thinks the server cannot, as no -PLUS
//!   mechanism is offered; channel binding `p=` is refused) then the bare
//!   message `n=USER,r=CLIENT_NONCE`, with optional extensions `KEY=VALUE`
//!   (`tokenauth=true`, Kafka's delegation tokens, is refused: none are
//!   issued here).
//! - server-first: `r=CLIENT_NONCE SERVER_NONCE,s=BASE64(SALT),i=ITERATIONS`.
//! - client-final: `c=BASE64(GS2 header),r=NONCE,p=BASE64(ClientProof)`.
//! - server-final: `v=BASE64(ServerSignature)`.
//!
//! The server never sees a password: it keeps `StoredKey = H(ClientKey)`
//! and `ServerKey`, checks `H(ClientProof XOR ClientSignature) ==
//! StoredKey`, and proves itself with `HMAC(ServerKey, AuthMessage)`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::{constant_time_eq, random_bytes, AuthError};

pub mod client;
pub use client::{SaltedKeys, ScramClient};

/// Iterations Kafka accepts for a SCRAM credential (its
/// `ScramMechanism`'s bounds): fewer is weak, more costs a login too much.
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;

/// Salt bytes of a credential made here.
pub const SALT_BYTES: usize = 32;

/// Random bytes in the server's half of the nonce.
const SERVER_NONCE_BYTES: usize = 24;

/// Longest client message taken (names, nonces and proofs are short;
/// anything longer is not a SCRAM message).
pub const MESSAGE_BYTES_MAX: usize = 4096;

/// A SCRAM mechanism and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::ScramSha512];

    /// The SASL name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` type: 1 for SHA-256, 2 for SHA-512, as
    /// DescribeUserScramCredentials and the metadata log number them.
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
        }
    }

    /// Bytes of this mechanism's hash (and of its salted passwords).
    pub fn hash_bytes(self) -> usize {
        match self {
            Mechanism::ScramSha256 => 32,
            Mechanism::ScramSha512 => 64,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::ScramSha256 => Sha256::digest(data).to_vec(),
            Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Mechanism::ScramSha256 => run::<Hmac<Sha256>>(key, data),
            Mechanism::ScramSha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// `Hi()`: PBKDF2 with this mechanism's HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::ScramSha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Mechanism::ScramSha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// What an admin client sends in AlterUserScramCredentials for
/// `password`: a new random salt and `Hi(password, salt, iterations)`.
/// The broker derives the stored credential from these
/// ([`ScramCredential::from_salted_password`]) and never sees the password.
pub struct SaltedPassword {
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl SaltedPassword {
    pub fn new(
        mechanism: Mechanism,
        password: &[u8],
        iterations: u32,
    ) -> Result<SaltedPassword, AuthError> {
        check_iterations(mechanism, iterations)?;
        let salt = random_bytes(SALT_BYTES)?;
        let salted_password = mechanism.salted_password(password, &salt, iterations);
        Ok(SaltedPassword { salt, salted_password })
    }
}

/// A user's stored SCRAM secret for one mechanism: what Kafka keeps
/// (`UserScramCredentialRecord`: salt, iterations, stored key, server
/// key), never the password. Its `PartialEq` compares in variable time:
/// for images and records, never for checking a client's input (the
/// checks above use [`constant_time_eq`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: Mechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    /// Keys are secrets: only the mechanism and iterations are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScramCredential({}, {} iterations)", self.mechanism.name(), self.iterations)
    }
}

impl ScramCredential {
    /// The credential of `password` with `salt`.
    pub fn derive(
        mechanism: Mechanism,
        password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<ScramCredential, AuthError> {
        check_iterations(mechanism, iterations)?;
        let salted = mechanism.salted_password(password, salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt, &salted, iterations)
    }

    /// The credential of an already salted password (`Hi(password, salt,
    /// iterations)`), as AlterUserScramCredentials carries it: the admin
    /// client salts, the broker never sees the password.
    pub fn from_salted_password(
        mechanism: Mechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: u32,
    ) -> Result<ScramCredential, AuthError> {
        check_iterations(mechanism, iterations)?;
        if salt.is_empty() || salted_password.is_empty() {
            return Err(AuthError::Malformed("an empty salt or salted password".into()));
        }
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Ok(ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        })
    }

    /// The credential of `password` with a new random salt.
    pub fn generate(
        mechanism: Mechanism,
        password: &[u8],
        iterations: u32,
    ) -> Result<ScramCredential, AuthError> {
        ScramCredential::derive(mechanism, password, &random_bytes(SALT_BYTES)?, iterations)
    }

    /// Whether its iterations are within Kafka's bounds: a stored record
    /// outside them is never used (a huge count would hold a core).
    pub fn iterations_allowed(&self) -> bool {
        (ITERATIONS_MIN..=ITERATIONS_MAX).contains(&self.iterations)
    }

    /// Whether `password` is this credential's (SASL PLAIN's check).
    pub fn matches_password(&self, password: &[u8]) -> bool {
        if !self.iterations_allowed() {
            return false;
        }
        let salted = self.mechanism.salted_password(password, &self.salt, self.iterations);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        constant_time_eq(&self.mechanism.hash(&client_key), &self.stored_key)
    }
}

/// The server's side of one SCRAM exchange: [`ScramServer::first`] takes
/// the client-first message, [`ScramServer::finish`] the client-final one.
pub struct ScramServer {
    mechanism: Mechanism,
    state: State,
}

enum State {
    First,
    Final {
        user: String,
        credential: ScramCredential,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

impl ScramServer {
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer { mechanism, state: State::First }
    }

    /// Takes the client-first message and answers the server-first one.
    /// `credential` finds the user's credential for this mechanism; an
    /// unknown user fails here, as Kafka fails it.
    pub fn first(
        &mut self,
        message: &[u8],
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, AuthError> {
        let server_nonce = STANDARD_NO_PAD.encode(random_bytes(SERVER_NONCE_BYTES)?);
        self.first_with_nonce(message, &server_nonce, credential)
    }

    /// [`ScramServer::first`] with the server's half of the nonce given:
    /// for replaying a recorded exchange (tests and the fuzzer replay RFC
    /// 7677's). A broker calls [`ScramServer::first`].
    pub fn first_with_nonce(
        &mut self,
        message: &[u8],
        server_nonce: &str,
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, AuthError> {
        if !matches!(self.state, State::First) {
            return Err(malformed("a client-first message out of turn"));
        }
        self.state = State::Done;
        let message = text(message)?;
        let (gs2_header, bare) = split_gs2(message)?;
        let mut fields = bare.split(',');
        let user = unescape(field(fields.next(), "n")?)?;
        let client_nonce = field(fields.next(), "r")?;
        // RFC 5802's printable: ASCII without spaces, and no comma.
        if client_nonce.is_empty()
            || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(malformed("a client nonce that is empty or not printable"));
        }
        for extension in fields {
            let (key, value) = extension
                .split_once('=')
                .ok_or_else(|| malformed("an extension without a value"))?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(malformed("an extension name that is not letters"));
            }
            if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
                return Err(malformed("delegation tokens are not supported"));
            }
        }
        if let Some(authzid) = gs2_header[2..].strip_prefix("a=").and_then(|a| a.strip_suffix(','))
        {
            if unescape(authzid)? != user {
                return Err(malformed(
                    "Client requested an authorization id that is different from username",
                ));
            }
        }
        let credential = credential(&user)
            .filter(|c| c.mechanism == self.mechanism && c.iterations_allowed())
            .ok_or(AuthError::InvalidCredentials)?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        let answer = server_first.clone().into_bytes();
        self.state = State::Final {
            user,
            credential,
            gs2_header: gs2_header.to_string(),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        };
        Ok(answer)
    }

    /// Takes the client-final message; answers the server-final one and
    /// the authenticated user.
    pub fn finish(&mut self, message: &[u8]) -> Result<(Vec<u8>, String), AuthError> {
        let State::Final { user, credential, gs2_header, client_first_bare, server_first, nonce } =
            std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(malformed("a client-final message out of turn"));
        };
        let message = text(message)?;
        let (without_proof, proof) =
            message.rsplit_once(",p=").ok_or_else(|| malformed("no proof in client-final"))?;
        let mut fields = without_proof.split(',');
        let binding = field(fields.next(), "c")?;
        if binding != STANDARD.encode(gs2_header.as_bytes()) {
            return Err(malformed("channel binding does not match the GS2 header"));
        }
        // Kafka's rule: the nonce ends with the server's (RFC 5802 wants
        // it equal). librdkafka before 2.1 sends its own half once more in
        // front; the proof signs what was sent, so this admits no replay.
        if !field(fields.next(), "r")?.ends_with(nonce.as_str()) {
            return Err(malformed("the nonce does not match the server's"));
        }
        let proof = STANDARD.decode(proof).map_err(|_| malformed("a proof not in base64"))?;
        let m = self.mechanism;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(AuthError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&m.hash(&client_key), &credential.stored_key) {
            return Err(AuthError::InvalidCredentials);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((format!("v={}", STANDARD.encode(server_signature)).into_bytes(), user))
    }
}

/// Kafka's bounds on a credential's iterations.
fn check_iterations(mechanism: Mechanism, iterations: u32) -> Result<(), AuthError> {
    if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
        return Err(AuthError::Malformed(format!(
            "{iterations} iterations: {} takes {ITERATIONS_MIN} to {ITERATIONS_MAX}",
            mechanism.name()
        )));
    }
    Ok(())
}

fn malformed(why: &str) -> AuthError {
    AuthError::Malformed(why.to_string())
}

fn text(message: &[u8]) -> Result<&str, AuthError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(malformed("a SCRAM message longer than any valid one"));
    }
    std::str::from_utf8(message).map_err(|_| malformed("a SCRAM message not in UTF-8"))
}

/// The GS2 header (`n,,` or `n,a=AUTHZID,`, `y` as `n`) and the bare
/// message after it; any other header is refused.
fn split_gs2(message: &str) -> Result<(&str, &str), AuthError> {
    if message.starts_with("p=") {
        return Err(malformed("channel binding is not supported"));
    }
    if !(message.starts_with("n,") || message.starts_with("y,")) {
        return Err(malformed("a client-first message without a GS2 header"));
    }
    let end = message[2..].find(',').ok_or_else(|| malformed("a GS2 header without its end"))?;
    let authzid = &message[2..2 + end];
    if !(authzid.is_empty() || authzid.starts_with("a=")) {
        return Err(malformed("a GS2 header with something else than an authorization id"));
    }
    Ok(message.split_at(2 + end + 1))
}

/// The value of `k=v` when the key is `key`.
fn field<'a>(part: Option<&'a str>, key: &str) -> Result<&'a str, AuthError> {
    part.and_then(|p| p.strip_prefix(key))
        .and_then(|p| p.strip_prefix('='))
        .ok_or_else(|| AuthError::Malformed(format!("expected the {key}= field")))
}

/// A SASL name's user name: `=2C` is a comma and `=3D` an equals sign,
/// any other `=` is invalid (RFC 5802 section 5.1).
fn unescape(saslname: &str) -> Result<String, AuthError> {
    let user = saslname.replace("=2C", ",");
    if user.replace("=3D", "").contains('=') {
        return Err(malformed("an invalid user name"));
    }
    let user = user.replace("=3D", "=");
    if user.is_empty() {
        return Err(malformed("an empty user name"));
    }
    Ok(user)
}

#[cfg(test)]
mod tests;
