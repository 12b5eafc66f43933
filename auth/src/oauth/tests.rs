//! Tokens signed here with ring's ECDSA (P-256) against their JWKS: the
//! valid one, then each way a token must fail. RS256 is tested end to end
//! with openssl's keys (tests/broker/test_oauth.py).

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::*;

const NOW_MS: i64 = 1_800_000_000_000;

struct Signer {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Signer {
    fn new() -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Signer { pair, rng }
    }

    fn jwk(&self, kid: &str) -> String {
        let point = self.pair.public_key().as_ref();
        let (x, y) = (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..]));
        format!(r#"{{"kty":"EC","crv":"P-256","kid":"{kid}","use":"sig","x":"{x}","y":"{y}"}}"#)
    }

    fn token(&self, header: &str, claims: &str) -> String {
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = self.pair.sign(&self.rng, signed.as_bytes()).unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

fn message(token: &str) -> Vec<u8> {
    format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
}

fn claims(extra: &str) -> String {
    let exp = NOW_MS / 1000 + 3600;
    format!(r#"{{"sub":"alice","exp":{exp},"iat":{}{extra}}}"#, NOW_MS / 1000)
}

const ES256: &str = r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#;

#[test]
fn a_signed_token_names_its_subject_until_it_expires() {
    let s = Signer::new();
    let jwks = Jwks::parse(format!(r#"{{"keys":[{}]}}"#, s.jwk("k1")).as_bytes()).unwrap();
    let token = s.token(ES256, &claims(""));
    let got = authenticate(&message(&token), &jwks, &Expectations::default(), NOW_MS).unwrap();
    assert_eq!(got, Token { user: "alice".into(), expires_ms: (NOW_MS / 1000 + 3600) * 1000 });
    // An authorization id (the subject's), other pairs and the scheme in
    // another case are taken; another authorization id is not.
    let m = format!("n,a=alice,\x01host=broker\x01auth=bearer  {token}\x01\x01");
    assert!(authenticate(m.as_bytes(), &jwks, &Expectations::default(), NOW_MS).is_ok());
    let m = format!("n,a=root,\x01auth=Bearer {token}\x01\x01");
    assert!(authenticate(m.as_bytes(), &jwks, &Expectations::default(), NOW_MS).is_err());
    // Without a kid, every key is tried; huge times neither panic nor pass.
    let no_kid = s.token(r#"{"alg":"ES256"}"#, &claims(""));
    assert!(authenticate(&message(&no_kid), &jwks, &Expectations::default(), NOW_MS).is_ok());
    for times in [r#"{"sub":"a","exp":1e300}"#, r#"{"sub":"a","exp":1e300,"nbf":-1e300}"#] {
        let t = s.token(ES256, times);
        assert!(authenticate(&message(&t), &jwks, &Expectations::default(), NOW_MS).is_ok());
    }
    let t = s.token(ES256, r#"{"sub":"a","exp":-1e300}"#);
    assert!(authenticate(&message(&t), &jwks, &Expectations::default(), NOW_MS).is_err());
    // Past its expiry (and the clock skew), refused.
    let later = NOW_MS + 3600 * 1000 + CLOCK_SKEW_SECS * 1000;
    assert!(authenticate(&message(&token), &jwks, &Expectations::default(), later).is_err());
}

#[test]
fn each_way_a_token_must_fail_fails() {
    let s = Signer::new();
    let other = Signer::new();
    let jwks = Jwks::parse(
        format!(r#"{{"keys":[{},{{"kty":"oct","k":"c2VjcmV0"}}]}}"#, s.jwk("k1")).as_bytes(),
    )
    .unwrap();
    let expect = Expectations {
        audience: vec!["corelog".into()],
        issuer: Some("https://idp".into()),
        sub_claim: "sub".into(),
    };
    let good = r#","aud":["x","corelog"],"iss":"https://idp""#;
    let ok = s.token(ES256, &claims(good));
    assert_eq!(authenticate(&message(&ok), &jwks, &expect, NOW_MS).unwrap().user, "alice");
    let (header, rest) = ok.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    let forged_claims =
        URL_SAFE_NO_PAD.encode(claims(r#","aud":"corelog","iss":"https://idp","sub":"root""#));
    let unsigned = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#));
    let cases: Vec<(String, &str)> = vec![
        (other.token(ES256, &claims(good)), "another key's signature"),
        (format!("{header}.{forged_claims}.{}", ok.rsplit('.').next().unwrap()), "claims changed"),
        (unsigned, "alg none"),
        (s.token(r#"{"alg":"ES256","kid":"k2"}"#, &claims(good)), "an unknown kid"),
        (s.token(r#"{"alg":"RS256","kid":"k1"}"#, &claims(good)), "RS256 with an EC key"),
        (s.token(r#"{"alg":"HS256","kid":"k1"}"#, &claims(good)), "HS256"),
        (s.token(ES256, &claims(r#","aud":"other","iss":"https://idp""#)), "another audience"),
        (s.token(ES256, &claims(r#","aud":"corelog","iss":"https://evil""#)), "another issuer"),
        (s.token(ES256, &claims(r#","aud":"corelog""#)), "no issuer"),
        (s.token(ES256, r#"{"sub":"alice","aud":"corelog","iss":"https://idp"}"#), "no exp"),
        (
            s.token(
                ES256,
                &format!(r#"{{"exp":{},"aud":"corelog","iss":"https://idp"}}"#, NOW_MS / 1000 + 60),
            ),
            "no sub",
        ),
        (
            s.token(
                ES256,
                &format!(
                    r#"{{"sub":"a","exp":{},"aud":"corelog","iss":"https://idp"}}"#,
                    NOW_MS / 1000 - 60
                ),
            ),
            "expired",
        ),
        (
            s.token(
                ES256,
                &format!(
                    r#"{{"sub":"a","exp":{},"nbf":{},"aud":"corelog","iss":"https://idp"}}"#,
                    NOW_MS / 1000 + 7200,
                    NOW_MS / 1000 + 3600
                ),
            ),
            "not yet valid",
        ),
        ("a.b".into(), "two parts"),
        ("!!.??.**".into(), "not base64url"),
    ];
    for (token, why) in cases {
        assert!(authenticate(&message(&token), &jwks, &expect, NOW_MS).is_err(), "{why}");
    }
    for bad in [
        b"n,,auth=Bearer x".to_vec(),
        b"p=tls-unique,,\x01auth=Bearer x\x01\x01".to_vec(),
        format!("n,,\x01auth=Basic {ok}\x01\x01").into_bytes(),
        format!("n,,\x01auth=Bearer {ok}\x01").into_bytes(),
        b"n,,\x01host=x\x01\x01".to_vec(),
        vec![0xff; 10],
        vec![b'n'; MESSAGE_BYTES_MAX + 1],
    ] {
        assert!(authenticate(&bad, &jwks, &expect, NOW_MS).is_err(), "{bad:?}");
    }
}

#[test]
fn key_sets_that_cannot_verify_anything_are_refused() {
    for bad in [
        &b"[]"[..],
        b"{}",
        b"{\"keys\":[]}",
        b"{\"keys\":[{\"kty\":\"oct\",\"k\":\"eA\"}]}",
        b"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        b"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}",
    ] {
        assert!(Jwks::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    // An odd key beside a good one is skipped, not fatal.
    let s = Signer::new();
    let set = format!(r#"{{"keys":[{{"kty":"RSA","x5c":["..."]}},{}]}}"#, s.jwk("k1"));
    assert_eq!(Jwks::parse(set.as_bytes()).unwrap().keys.len(), 1);
}
