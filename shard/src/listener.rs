//! Listeners: the security protocols a node serves clients with, and
//! where (`--listener NAME://HOST:PORT`, Kafka's `listeners`). Each shard
//! binds `PORT + k` of every listener; the first listener also carries
//! broker-to-broker traffic (Kafka's default `inter.broker.listener.name`).
//!
//! Pure values and their parsing, shared read-only; nothing here opens a
//! socket (the shards do, in [`crate::node`]).

use crate::ids::ShardId;

/// Kafka's security protocols, which name the listeners: so a node has
/// at most one listener of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        SecurityProtocol::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Clients must authenticate with SASL before anything but
    /// ApiVersions.
    pub fn is_sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }

    /// The connection is wrapped in TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One listener: shard `k` listens on `host:port + k`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub protocol: SecurityProtocol,
    pub host: String,
    pub port: u16,
}

impl Listener {
    /// `NAME://HOST:PORT`, NAME a security protocol; an IPv6 host in
    /// brackets (`[::1]`).
    pub fn parse(s: &str) -> Result<Listener, String> {
        let bad = || format!("{s:?} is not NAME://HOST:PORT");
        let (name, addr) = s.split_once("://").ok_or_else(bad)?;
        let protocol = SecurityProtocol::parse(name).ok_or_else(|| {
            format!("{name:?} is not a listener name (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)")
        })?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        Ok(Listener { protocol, host: host.to_string(), port })
    }

    pub fn port_of(&self, shard: ShardId) -> u16 {
        self.port + shard.0
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.protocol, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.protocol, self.host, self.port)
        }
    }
}

/// Checks a node's listeners: at least one, one per protocol, and ports
/// that do not overlap once each shard adds its index.
pub fn check(listeners: &[Listener], shards: u16) -> Result<(), String> {
    if listeners.is_empty() {
        return Err("a node needs at least one listener".into());
    }
    for (i, l) in listeners.iter().enumerate() {
        if l.port as u32 + shards as u32 > 65536 {
            return Err(format!(
                "listener {l}: ports {}..{} exceed 65535",
                l.port,
                l.port as u32 + shards as u32
            ));
        }
        for other in &listeners[..i] {
            if other.protocol == l.protocol {
                return Err(format!("listener {} is given twice", l.protocol));
            }
            let (a, b, n) = (u32::from(l.port), u32::from(other.port), u32::from(shards));
            let overlap = a < b + n && b < a + n;
            if overlap && (l.host == other.host || is_any(&l.host) || is_any(&other.host)) {
                return Err(format!(
                    "listeners {other} and {l} overlap: each takes {shards} ports (one per shard)"
                ));
            }
        }
    }
    Ok(())
}

/// The wildcard addresses, which take a port on every interface.
fn is_any(host: &str) -> bool {
    matches!(host, "0.0.0.0" | "::" | "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_parse_and_print_as_kafka_writes_them() {
        let l = Listener::parse("SASL_PLAINTEXT://127.0.0.1:9093").unwrap();
        assert_eq!(l.protocol, SecurityProtocol::SaslPlaintext);
        assert_eq!((l.host.as_str(), l.port), ("127.0.0.1", 9093));
        assert_eq!(l.to_string(), "SASL_PLAINTEXT://127.0.0.1:9093");
        let v6 = Listener::parse("SSL://[::1]:9094").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "SSL://[::1]:9094");
        for bad in ["", "PLAINTEXT", "TLS://h:1", "PLAINTEXT://h", "PLAINTEXT://:1", "SSL://h:x"] {
            assert!(Listener::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlapping_or_repeated_listeners_are_refused() {
        let l = |s: &str| Listener::parse(s).unwrap();
        let ok = [l("PLAINTEXT://127.0.0.1:9092"), l("SASL_PLAINTEXT://127.0.0.1:9094")];
        assert!(check(&ok, 2).is_ok());
        assert!(check(&ok, 3).unwrap_err().contains("overlap"));
        let other_host = [l("PLAINTEXT://127.0.0.1:9092"), l("SSL://127.0.0.2:9092")];
        assert!(check(&other_host, 2).is_ok());
        let wildcard = [l("PLAINTEXT://0.0.0.0:9092"), l("SSL://127.0.0.2:9093")];
        assert!(check(&wildcard, 2).is_err());
        let twice = [l("PLAINTEXT://h:1000"), l("PLAINTEXT://h:2000")];
        assert!(check(&twice, 1).unwrap_err().contains("twice"));
        assert!(check(&[l("PLAINTEXT://h:65535")], 2).is_err());
        let top = [l("PLAINTEXT://h:65535"), l("SSL://h:65534")];
        assert!(check(&top, 1).is_ok());
        assert!(check(&[], 1).is_err());
    }
}
