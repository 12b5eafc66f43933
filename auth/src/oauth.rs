//! SASL OAUTHBEARER (RFC 7628) as Kafka's broker validates it (KIP-768's
//! JWT validator): the client sends a signed JWT (RFC 7519) as a bearer
//! token; the broker checks its signature against a JSON Web Key Set
//! (RFC 7517, a file here rather than a URL), its times, and optionally
//! its audience and issuer, and takes the principal from a claim (`sub`
//! by default). No token is ever logged or echoed.
//!
//! The client's message: a GS2 header (`n,,` or `n,a=AUTHZID,`), then
//! `\x01`-separated `key=value` pairs ending `\x01\x01`, one of them
//! `auth=Bearer TOKEN`. Algorithms: RS256, RS384, RS512 (RSA keys of
//! 2048 to 8192 bits) and ES256, ES384; `none` and the others are refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature;
use serde_json::Value;

use crate::AuthError;

/// Longest client message taken: tokens of a few kilobytes are usual;
/// Kafka takes what a request can carry, the listener bounds it at 512
/// KiB; 64 KiB is far beyond any real token.
pub const MESSAGE_BYTES_MAX: usize = 64 * 1024;

/// Kafka's `sasl.oauthbearer.clock.skew.seconds` default: how far the
/// token's times may be off the broker's clock.
pub const CLOCK_SKEW_SECS: i64 = 30;

/// Keys in a JWKS file, at most: a key set holds a few keys during a
/// rotation.
pub const KEYS_MAX: usize = 64;

/// One verification key of the set.
#[derive(Debug, Clone)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed point (0x04, x, y) and its curve's bits.
    Ec {
        point: Vec<u8>,
        bits: u16,
    },
}

/// A JSON Web Key Set: keys by id (`kid`; a key without one matches a
/// token without one).
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<(Option<String>, Key)>,
}

impl Jwks {
    /// Parses `{"keys": [...]}`; keys of other types or uses (`use: enc`),
    /// or without what this module verifies with (`n`/`e`, `x`/`y` of the
    /// curve's size), are skipped: one odd key in a provider's set must
    /// not stop the others. A set without a usable key is an error.
    pub fn parse(json: &[u8]) -> Result<Jwks, String> {
        let set: Value = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
        let keys = set.get("keys").and_then(Value::as_array).ok_or("no \"keys\" array")?;
        if keys.len() > KEYS_MAX {
            return Err(format!("{} keys: at most {KEYS_MAX}", keys.len()));
        }
        let b64 = |k: &Value, field: &str| -> Result<Vec<u8>, String> {
            let s = k.get(field).and_then(Value::as_str).ok_or(format!("a key without {field}"))?;
            URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|_| format!("{field} not in base64url"))
        };
        let mut out = Vec::new();
        for k in keys {
            if k.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
                continue;
            }
            let kid = k.get("kid").and_then(Value::as_str).map(str::to_string);
            let key = match k.get("kty").and_then(Value::as_str) {
                Some("RSA") => match (b64(k, "n"), b64(k, "e")) {
                    (Ok(n), Ok(e)) => {
                        Key::Rsa { n: n.iter().skip_while(|&&b| b == 0).copied().collect(), e }
                    }
                    _ => continue,
                },
                Some("EC") => {
                    let bits = match k.get("crv").and_then(Value::as_str) {
                        Some("P-256") => 256,
                        Some("P-384") => 384,
                        _ => continue,
                    };
                    let len = usize::from(bits / 8);
                    match (b64(k, "x"), b64(k, "y")) {
                        (Ok(x), Ok(y)) if x.len() == len && y.len() == len => {
                            Key::Ec { point: [&[4u8][..], &x, &y].concat(), bits }
                        }
                        _ => continue,
                    }
                }
                _ => continue,
            };
            out.push((kid, key));
        }
        if out.is_empty() {
            return Err("no RSA or EC (P-256, P-384) signing key".into());
        }
        Ok(Jwks { keys: out })
    }

    /// The keys a token may be signed with: those of its `kid`, or every
    /// key when it names none (as Kafka's jose4j resolver tries them).
    fn candidates<'a>(&'a self, kid: Option<&'a str>) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys
            .iter()
            .filter(move |(k, _)| kid.is_none() || k.as_deref() == kid)
            .map(|(_, key)| key)
    }
}

/// What a token must show, beyond a valid signature and times.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// Kafka's `sasl.oauthbearer.expected.audience`: one of these in `aud`.
    pub audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`: `iss` equal to it.
    pub issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name`: the claim naming the principal.
    pub sub_claim: String,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations { audience: Vec::new(), issuer: None, sub_claim: "sub".into() }
    }
}

/// A valid token: who it names and when it expires (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub user: String,
    pub expires_ms: i64,
}

/// Checks a client's OAUTHBEARER message at `now_ms` (ms since the epoch).
pub fn authenticate(
    message: &[u8],
    jwks: &Jwks,
    expect: &Expectations,
    now_ms: i64,
) -> Result<Token, AuthError> {
    let (authzid, token) = bearer_token(message)?;
    let token = validate(token, jwks, expect, now_ms)?;
    if authzid.is_some_and(|a| a != token.user) {
        return Err(bad("an authorization id other than the token's subject"));
    }
    Ok(token)
}

fn bad(why: &str) -> AuthError {
    AuthError::Malformed(why.to_string())
}

/// The authorization id (if any) and the token of `auth=Bearer TOKEN` in
/// an RFC 7628 client message (the scheme in any case, as RFC 7235 has it).
fn bearer_token(message: &[u8]) -> Result<(Option<&str>, &str), AuthError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(bad("an OAUTHBEARER message longer than any valid one"));
    }
    let message = std::str::from_utf8(message).map_err(|_| bad("a message not in UTF-8"))?;
    let (gs2, rest) = message.split_once('\x01').ok_or_else(|| bad("no key-value pairs"))?;
    let authzid = match gs2.strip_prefix("n,").and_then(|g| g.strip_suffix(',')) {
        Some("") => None,
        Some(a) if a.starts_with("a=") && !a.contains(',') => Some(&a[2..]),
        _ => {
            return Err(bad(
                "a GS2 header other than n,, or n,a=..., (channel binding is not supported)",
            ))
        }
    };
    let pairs = rest.strip_suffix("\x01\x01").ok_or_else(|| bad("pairs not ended by two ^A"))?;
    let mut token = None;
    for pair in pairs.split('\x01') {
        let (key, value) = pair.split_once('=').ok_or_else(|| bad("a pair without ="))?;
        if key == "auth" {
            let (scheme, t) = value.split_once(' ').ok_or_else(|| bad("auth without a token"))?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(bad("auth is not a Bearer token"));
            }
            token = Some(t.trim());
        }
    }
    Ok((authzid, token.ok_or_else(|| bad("no auth=Bearer pair"))?))
}

/// A JWT's signature, times, audience, issuer and principal.
pub fn validate(
    token: &str,
    jwks: &Jwks,
    expect: &Expectations,
    now_ms: i64,
) -> Result<Token, AuthError> {
    let invalid = |why: &str| AuthError::Malformed(format!("invalid token: {why}"));
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not three dot-separated parts"));
    };
    let json = |part: &str| -> Result<Value, AuthError> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| invalid("a part not in base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| invalid("a part not JSON"))
    };
    let (header_json, claims) = (json(header)?, json(payload)?);
    let alg = header_json.get("alg").and_then(Value::as_str).unwrap_or("none");
    let kid = header_json.get("kid").and_then(Value::as_str);
    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid("a signature not in base64url"))?;
    let signed = &token.as_bytes()[..header.len() + 1 + payload.len()];
    if !matches!(alg, "RS256" | "RS384" | "RS512" | "ES256" | "ES384") {
        let alg: String = alg.chars().take(16).collect();
        return Err(invalid(&format!("algorithm {alg:?} is not accepted")));
    }
    let mut candidates = jwks.candidates(kid).peekable();
    if candidates.peek().is_none() {
        return Err(invalid("no key of the set has its kid"));
    }
    let verified = candidates.any(|key| verifies(alg, key, signed, &signature));
    if !verified {
        return Err(AuthError::InvalidCredentials);
    }
    claims_of(&claims, expect, now_ms)
}

/// Whether `signature` of `signed` verifies with `key` under `alg` (a key
/// of another type never does).
fn verifies(alg: &str, key: &Key, signed: &[u8], signature: &[u8]) -> bool {
    match (alg, key) {
        ("RS256" | "RS384" | "RS512", Key::Rsa { n, e }) => {
            let params = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                _ => &signature::RSA_PKCS1_2048_8192_SHA512,
            };
            signature::RsaPublicKeyComponents { n, e }.verify(params, signed, signature).is_ok()
        }
        ("ES256", Key::Ec { point, bits: 256 }) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, signature)
                .is_ok()
        }
        ("ES384", Key::Ec { point, bits: 384 }) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(signed, signature)
                .is_ok()
        }
        _ => false,
    }
}

/// The claims of a token whose signature verified: times, audience,
/// issuer, principal.
fn claims_of(claims: &Value, expect: &Expectations, now_ms: i64) -> Result<Token, AuthError> {
    let invalid = |why: &str| AuthError::Malformed(format!("invalid token: {why}"));
    // Saturating: a huge or negative time is far future or far past.
    let seconds =
        |claim: &str| claims.get(claim).and_then(Value::as_f64).map(|s| (s * 1000.0) as i64);
    let skew = CLOCK_SKEW_SECS * 1000;
    let expires_ms = seconds("exp").ok_or_else(|| invalid("no exp"))?;
    if expires_ms.saturating_add(skew) <= now_ms {
        return Err(invalid("expired"));
    }
    if seconds("nbf").or(seconds("iat")).is_some_and(|from| from.saturating_sub(skew) > now_ms) {
        return Err(invalid("not valid yet"));
    }
    if !expect.audience.is_empty() {
        let aud = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !aud.iter().any(|a| expect.audience.iter().any(|e| e == a)) {
            return Err(invalid("not for this audience"));
        }
    }
    if let Some(issuer) = &expect.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(invalid("another issuer"));
        }
    }
    let user = claims
        .get(&expect.sub_claim)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid(&format!("no {} claim", expect.sub_claim)))?;
    Ok(Token { user: user.to_string(), expires_ms })
}

#[cfg(test)]
mod tests;
