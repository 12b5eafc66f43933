//! How a client reaches a secured listener: Kafka's `security.protocol`
//! with TLS (rustls) and a SASL login (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
//! read from a properties file as Kafka's tools take `--command-config`,
//! in the keys librdkafka clients use.
//!
//! Owns the configuration and the login exchange over an open [`Conn`];
//! the socket and its TLS session are [`crate::conn`]'s.
//!
//! | key | meaning |
//! |---|---|
//! | `security.protocol` | `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT`, `SASL_SSL` |
//! | `sasl.mechanism` (or librdkafka's `sasl.mechanisms`) | `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`; required (Kafka's default, GSSAPI, is not spoken) |
//! | `sasl.username`, `sasl.password` | the login |
//! | `sasl.jaas.config` | Kafka's form of the login: `... username="U" password="P";` |
//! | `ssl.ca.location` | PEM certificates the broker's must chain to |
//! | `ssl.certificate.location`, `ssl.key.location` | this client's certificate and key (PEM), for listeners asking for one |

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use auth::{Credential, Mechanism, SaslMechanism, ScramClient};
use bytes::Bytes;
use net::kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use net::kafka_protocol::protocol::StrBytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::conn::Conn;

/// Where and how to log in; `Security::default()` is PLAINTEXT.
#[derive(Clone, Default)]
pub struct Security {
    /// The TLS client configuration, for SSL and SASL_SSL.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<Credential>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.protocol())?;
        match &self.sasl {
            Some(c) => write!(f, " as {} with {}", c.user, c.mechanism.name()),
            None => Ok(()),
        }
    }
}

impl Security {
    /// Kafka's name of the protocol this speaks.
    pub fn protocol(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "PLAINTEXT",
            (true, false) => "SSL",
            (false, true) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }

    /// Reads a properties file (`key=value` lines, `#` and `!` comments).
    pub fn from_file(path: &Path) -> Result<Security> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Security::from_properties(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn from_properties(text: &str) -> Result<Security> {
        let mut props = std::collections::BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                bail!(
                    "a line that is not key=value: {:?}",
                    line.chars().take(40).collect::<String>()
                );
            };
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
        let get = |k: &str| props.get(k).map(String::as_str);
        let protocol = get("security.protocol").unwrap_or("PLAINTEXT").to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => bail!(
                "security.protocol {other:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            ),
        };
        let tls = match tls {
            false => None,
            true => Some(tls_config(
                get("ssl.ca.location"),
                match (get("ssl.certificate.location"), get("ssl.key.location")) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    _ => bail!("ssl.certificate.location and ssl.key.location go together"),
                },
            )?),
        };
        let sasl = match sasl {
            false => None,
            true => {
                let name = get("sasl.mechanism").or(get("sasl.mechanisms")).context(
                    "a SASL login needs sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                )?;
                let mechanism = SaslMechanism::parse(name)
                    .filter(|m| *m != SaslMechanism::OAuthBearer)
                    .with_context(|| {
                        format!(
                        "sasl.mechanism {name:?}: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                    )
                    })?;
                let jaas = get("sasl.jaas.config").map(jaas_login).transpose()?;
                let user = get("sasl.username").map(str::to_string);
                let password = get("sasl.password").map(str::to_string);
                let (user, password) = match (user, password, jaas) {
                    (Some(u), Some(p), _) => (u, p),
                    (_, _, Some(login)) => login,
                    _ => bail!(
                        "a SASL login needs sasl.username and sasl.password (or sasl.jaas.config)"
                    ),
                };
                Some(Credential::new(mechanism, &user, &password))
            }
        };
        Ok(Security { tls, sasl })
    }
}

/// `username="U"` and `password="P"` of a JAAS line (Kafka's
/// PlainLoginModule or ScramLoginModule).
fn jaas_login(jaas: &str) -> Result<(String, String)> {
    // `key="value"` as a word of its own (not the tail of another key).
    let value = |key: &str| -> Option<String> {
        let pattern = format!("{key}=\"");
        let at = jaas
            .match_indices(&pattern)
            .map(|(i, _)| i)
            .find(|&i| i == 0 || jaas[..i].ends_with(|c: char| c.is_whitespace() || c == ';'))?;
        let start = at + pattern.len();
        let end = jaas[start..].find('"')?;
        Some(jaas[start..start + end].to_string())
    };
    match (value("username"), value("password")) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => bail!("sasl.jaas.config without username=\"...\" and password=\"...\""),
    }
}

fn tls_config(ca: Option<&str>, own: Option<(&str, &str)>) -> Result<Arc<rustls::ClientConfig>> {
    let ca = ca.context("SSL needs ssl.ca.location, the CA the broker's certificate chains to")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("ssl.ca.location {ca}"))?
    {
        roots.add(cert.with_context(|| format!("ssl.ca.location {ca}"))?)?;
    }
    if roots.is_empty() {
        bail!("ssl.ca.location {ca}: no CERTIFICATE in the file");
    }
    #[allow(deprecated)] // ring: see the shard's tls module (decision 48).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let config = match own {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("ssl.certificate.location {cert}"))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("ssl.key.location {key}"))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

/// Logs in on `conn`: SaslHandshake v1, then SaslAuthenticate v1 once
/// (PLAIN) or twice (SCRAM, checking the broker's signature). Answers
/// the session's lifetime in milliseconds (0: unbounded; KIP-368).
pub fn log_in(login: &Credential, conn: &mut Conn) -> Result<i64> {
    let mechanism = login.mechanism.name();
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from(mechanism));
    let r: SaslHandshakeResponse = conn.call(ApiKey::SaslHandshake, 1, &handshake)?;
    if r.error_code != 0 {
        let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
        bail!("{} does not offer {mechanism} (it offers {})", conn.addr, offered.join(", "));
    }
    match login.mechanism {
        SaslMechanism::Plain => {
            let message = auth::plain::client_message(&login.user, login.password());
            Ok(authenticate(conn, message)?.1)
        }
        SaslMechanism::Scram(m) => scram(login, conn, m),
        SaslMechanism::OAuthBearer => bail!("OAUTHBEARER logins are not made by this client"),
    }
}

fn scram(login: &Credential, conn: &mut Conn, m: Mechanism) -> Result<i64> {
    let (mut client, first) = ScramClient::new(m, &login.user, login.password())?;
    let (server_first, _) = authenticate(conn, first)?;
    let last = client.respond(&server_first, &mut None)?;
    let (server_final, lifetime) = authenticate(conn, last)?;
    client.verify(&server_final)?;
    Ok(lifetime)
}

/// One SaslAuthenticate round: the broker's bytes and the session's
/// lifetime.
fn authenticate(conn: &mut Conn, bytes: Vec<u8>) -> Result<(Bytes, i64)> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
    let r: SaslAuthenticateResponse = conn.call(ApiKey::SaslAuthenticate, 1, &request)?;
    if r.error_code != 0 {
        let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
        bail!("logging in to {}: {message} (error {})", conn.addr, r.error_code);
    }
    Ok((r.auth_bytes, r.session_lifetime_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_give_the_login_and_refuse_what_cannot_work() {
        let s = Security::from_properties(
            "# admin\nsecurity.protocol=sasl_plaintext\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.username=alice\nsasl.password=p=w\n",
        )
        .unwrap();
        let login = s.sasl.unwrap();
        assert_eq!((login.user.as_str(), login.password()), ("alice", &b"p=w"[..]));
        assert!(!format!("{login:?}").contains("p=w"));
        let s = Security::from_properties(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanisms=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required serviceusername=\"x\" username=\"bob\" password=\"s;e\";",
        )
        .unwrap();
        let login = s.sasl.unwrap();
        assert_eq!(
            (login.mechanism, login.user.as_str(), login.password()),
            (SaslMechanism::Plain, "bob", &b"s;e"[..])
        );
        assert!(Security::from_properties("").unwrap().sasl.is_none());
        for bad in [
            "security.protocol=KERBEROS",
            "security.protocol=SASL_PLAINTEXT",
            "security.protocol=SASL_PLAINTEXT\nsasl.username=a\nsasl.password=b",
            "security.protocol=SSL\nssl.ca.location=/etc/hostname\nssl.key.location=/k.pem",
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.username=a\nsasl.password=b",
            "security.protocol=SSL",
            "security.protocol=SSL\nssl.ca.location=/nonexistent.pem",
            "just words",
        ] {
            assert!(Security::from_properties(bad).is_err(), "{bad}");
        }
    }
}
