//! Authentication as Kafka's SASL mechanisms do it, as pure functions of
//! the bytes exchanged: no sockets, no storage, no clock. A shard runs an
//! exchange per connection on its own core; the credentials it checks
//! against come from the caller (the metadata image, later), and what an
//! exchange proves is a user name; what that user may do is [`acl`]'s
//! decision, from the bindings the caller gives it.
//!
//! - [`scram`]: SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the
//!   server side of the exchange and the salted credential it checks, and
//!   the client side a broker logs in to another with ([`ScramClient`])
//!   ([`ScramCredential`], Kafka's layout: salt, iterations, stored key,
//!   server key; never the password).
//! - [`plain`]: SASL PLAIN (RFC 4616), checked against the same SCRAM
//!   credentials, so that one stored secret serves both mechanisms.
//! - [`acl`]: ACL bindings and the decision they make ([`Authorizer`],
//!   Kafka's StandardAuthorizer semantics), and DescribeAcls' filters.
//! - [`oauth`]: OAUTHBEARER (RFC 7628): a JWT checked against a JWKS.
//! - [`login`]: a client's login ([`Credential`]): mechanism, user, password.
//! - [`x500`]: the principal a TLS client certificate proves, its subject
//!   as Kafka's default `ssl.principal.mapping.rules` names it.
//!
//! Errors are [`AuthError`]: what the client is told (Kafka's words, never
//! a secret) and whether it was the credentials or the message that failed.

pub mod acl;
pub mod login;
pub mod oauth;
pub mod plain;
pub mod scram;
pub mod x500;

pub use acl::{AclBinding, AclFilter, Authorizer};
pub use login::Credential;
pub use scram::{Mechanism, SaltedKeys, SaltedPassword, ScramClient, ScramCredential, ScramServer};

/// The SASL mechanisms a listener may serve, by Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslMechanism {
    Plain,
    Scram(Mechanism),
    /// A signed JWT ([`oauth`]); served only with a key set to check it.
    OAuthBearer,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::Scram(Mechanism::ScramSha256),
        SaslMechanism::Scram(Mechanism::ScramSha512),
    ];

    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// A mechanism by name: [`SaslMechanism::ALL`]'s (the ones served by
    /// default) and `OAUTHBEARER`.
    pub fn parse(name: &str) -> Option<SaslMechanism> {
        SaslMechanism::ALL
            .into_iter()
            .chain([SaslMechanism::OAuthBearer])
            .find(|m| m.name() == name)
    }
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user, wrong password or proof: one answer for all, as
    /// Kafka gives (`SASL_AUTHENTICATION_FAILED`).
    InvalidCredentials,
    /// A message that does not follow the mechanism's grammar, or asks
    /// for what is not served (channel binding, delegation tokens).
    Malformed(String),
    /// The broker could not go on (no random bytes from the system).
    Internal(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::InvalidCredentials => {
                f.write_str("Authentication failed: Invalid username or password")
            }
            AuthError::Malformed(why) => write!(f, "Authentication failed: {why}"),
            AuthError::Internal(why) => write!(f, "Authentication failed: {why}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// Equality in time independent of where the inputs differ (keys and
/// proofs), with `subtle` (already in the tree through the hashes), whose
/// comparison the optimizer cannot turn into an early exit.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Bytes from the operating system's generator (nonces and salts).
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>, AuthError> {
    let mut out = vec![0u8; n];
    getrandom::getrandom(&mut out)
        .map_err(|e| AuthError::Internal(format!("no random bytes from the system: {e}")))?;
    Ok(out)
}
