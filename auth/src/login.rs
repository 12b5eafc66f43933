//! A login as a client holds it: what a broker presents to another
//! broker and what the admin client presents to a broker. Values only;
//! the exchanges are [`crate::scram`]'s and [`crate::plain`]'s.

use crate::SaslMechanism;

/// A SASL login as a client presents it: the mechanism, the user and
/// the password (a broker's `--inter-broker-credential`, an admin
/// client's `sasl.username`). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub mechanism: SaslMechanism,
    pub user: String,
    password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({} as {})", self.mechanism.name(), self.user)
    }
}

impl Credential {
    pub fn new(mechanism: SaslMechanism, user: &str, password: &str) -> Credential {
        Credential { mechanism, user: user.to_string(), password: password.to_string() }
    }

    /// `USER:MECHANISM:PASSWORD` (the password may hold colons, the user
    /// may not), MECHANISM one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. The
    /// error never quotes the value: it holds a password.
    pub fn parse(value: &str) -> Result<Credential, String> {
        let bad = || "expected USER:MECHANISM:PASSWORD".to_string();
        let mut parts = value.splitn(3, ':');
        let (Some(user), Some(mechanism), Some(password)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if user.is_empty() || password.is_empty() {
            return Err(bad());
        }
        let mechanism = SaslMechanism::parse(mechanism)
            .filter(|m| *m != SaslMechanism::OAuthBearer)
            .ok_or_else(|| {
                "the mechanism is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512".to_string()
            })?;
        Ok(Credential { mechanism, user: user.to_string(), password: password.to_string() })
    }

    pub fn password(&self) -> &[u8] {
        self.password.as_bytes()
    }

    /// The principal other brokers know this node by: `User:USER`.
    pub fn principal(&self) -> String {
        format!("User:{}", self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_never_show_their_password() {
        let c = Credential::parse("broker:SCRAM-SHA-512:pa:ss").unwrap();
        assert_eq!((c.user.as_str(), c.password()), ("broker", &b"pa:ss"[..]));
        assert_eq!(c.principal(), "User:broker");
        assert!(!format!("{c:?}").contains("pa:ss"));
        assert_eq!(Credential::parse("b:PLAIN:x").unwrap().mechanism, SaslMechanism::Plain);
        for bad in [
            "broker",
            "broker:PLAIN",
            ":PLAIN:x",
            "b:PLAIN:",
            "b:GSSAPI:secret",
            "b:OAUTHBEARER:secret",
        ] {
            let e = Credential::parse(bad).unwrap_err();
            assert!(!e.contains("secret"), "{bad}: {e}");
        }
    }
}
