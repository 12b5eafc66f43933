"""SASL OAUTHBEARER (issue 17): librdkafka clients log in with signed JWTs
(RS256, made here with openssl) checked against a JWKS file; the
principal is the token's subject; expired tokens, tokens signed by
another key, for another audience or unsigned (librdkafka's built-in
unsecured JWT) are refused and never logged; a rotated key set is
followed without a restart. Every wait is bounded."""

import base64
import json
import subprocess
import time
import uuid

import pytest
from confluent_kafka import KafkaError, Producer

from conftest import BINARY, wait_until
from test_sasl import counter, produce
from test_sasl import refused as sasl_refused

TIMEOUT_S = 30


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=input,
                          timeout=TIMEOUT_S).stdout


class Issuer:
    """An RSA key and the tokens it signs."""

    def __init__(self, path, kid):
        self.path, self.kid = str(path), kid
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.path)

    def jwk(self):
        modulus = openssl("rsa", "-in", self.path, "-noout", "-modulus").decode().strip().split("=", 1)[1]
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                "n": b64url(bytes.fromhex(modulus)), "e": "AQAB"}

    def token(self, sub="alice", lifetime_s=3600, **claims):
        now = int(time.time())
        header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": self.kid}).encode())
        body = {"sub": sub, "iat": now, "exp": now + lifetime_s, "aud": "corelog", **claims}
        signed = f"{header}.{b64url(json.dumps(body).encode())}"
        signature = openssl("dgst", "-sha256", "-sign", self.path, input=signed.encode())
        return f"{signed}.{b64url(signature)}"


def write_jwks(path, *issuers):
    path.write_text(json.dumps({"keys": [i.jwk() for i in issuers]}))


@pytest.fixture
def idp(tmp_path):
    return Issuer(tmp_path / "idp.key", "k1")


@pytest.fixture
def oauth_broker(make_broker, tmp_path, idp):
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, idp)
    b = make_broker(listeners=("PLAINTEXT", "SASL_PLAINTEXT"), extra_args=[
        "--sasl-mechanisms", "SCRAM-SHA-512,OAUTHBEARER", "--oauthbearer-jwks", str(jwks),
        "--oauthbearer-expected-audience", "corelog", "--authorizer", "on",
        "--super-users", "User:alice;User:ANONYMOUS"]).start()
    b.jwks = jwks
    return b


def conf(broker, token, **more):
    return {"bootstrap.servers": broker.bootstrap_of("SASL_PLAINTEXT"), "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER", "oauth_cb": lambda _: (token, time.time() + 3600), **more}


def refused(config):
    """Produces once with `config`; returns the errors librdkafka reports
    once it reports an authentication error (a bounded wait)."""
    errors = []
    p = Producer({**config, "error_cb": errors.append})
    p.produce("never", b"x")
    wait_until(lambda: sasl_refused(p, errors), TIMEOUT_S, "an authentication error")
    p.purge()
    return [e.str() for e in errors]


def test_a_signed_token_logs_in_as_its_subject(oauth_broker, idp):
    topic = f"oauth-{uuid.uuid4().hex[:6]}"
    assert produce(conf(oauth_broker, idp.token("alice")), topic, [b"a", b"b"]) == []
    # bob is no super user and has no ACL: logged in, then refused.
    errors = produce(conf(oauth_broker, idp.token("bob")), topic, [b"c"])
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


@pytest.mark.parametrize("case", ["expired", "other key", "other audience", "unsigned"])
def test_tokens_that_must_not_log_in_are_refused_and_never_logged(oauth_broker, idp, tmp_path, case):
    if case == "expired":
        token = idp.token(lifetime_s=-120)
    elif case == "other key":
        token = Issuer(tmp_path / "rogue.key", "k1").token()
    elif case == "other audience":
        token = idp.token(aud="someone-else")
    if case == "unsigned":
        # librdkafka's built-in unsecured JWT: alg none.
        config = {"bootstrap.servers": oauth_broker.bootstrap_of("SASL_PLAINTEXT"),
                  "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
                  "sasl.oauthbearer.config": "principal=alice", "enable.sasl.oauthbearer.unsecure.jwt": True}
        token = None
    else:
        config = conf(oauth_broker, token)
    errors = refused(config)
    assert errors, case
    if token:
        signature = token.rsplit(".", 1)[1]
        assert signature not in oauth_broker.log() and signature not in str(errors)


def test_a_rotated_key_set_is_followed_without_a_restart(oauth_broker, idp, tmp_path):
    new = Issuer(tmp_path / "new.key", "k2")
    topic = f"oauth-{uuid.uuid4().hex[:6]}"
    refused(conf(oauth_broker, new.token()))
    write_jwks(oauth_broker.jwks, idp, new)
    # The shard looks at the file at most once a second: retried, bounded.
    wait_until(lambda: produce(conf(oauth_broker, new.token()), topic, [b"x"]) == [], TIMEOUT_S,
               "a login with the new key")
    assert "OAUTHBEARER: reloaded" in oauth_broker.log()
    assert produce(conf(oauth_broker, idp.token()), topic, [b"y"]) == []


@pytest.mark.parametrize("lifetime", [[], ["--connections-max-reauth-ms", "600000"]])
def test_a_session_ends_with_its_token_and_the_client_logs_in_again(make_broker, tmp_path, idp, lifetime):
    """Sessions unbounded or of 10 minutes, but each token expires in 3 s:
    the broker gives the session the token's lifetime (Kafka's rule), so
    librdkafka logs in again on its connection (KIP-368) with a fresh
    token while producing."""
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, idp)
    b = make_broker(listeners=("PLAINTEXT", "SASL_PLAINTEXT"), extra_args=[
        "--sasl-mechanisms", "OAUTHBEARER", "--oauthbearer-jwks", str(jwks), *lifetime]).start()
    config = {**conf(b, None), "oauth_cb": lambda _: (idp.token(lifetime_s=3), time.time() + 3)}
    topic = f"oauth-{uuid.uuid4().hex[:6]}"
    p = Producer({**config, "acks": "all"})
    failed = []

    def renewed():
        p.produce(topic, b"x", on_delivery=lambda e, m: e and failed.append(e))
        p.flush(TIMEOUT_S)
        return counter(b, "corelog_successful_reauthentication_total") >= 1

    wait_until(renewed, TIMEOUT_S, "a re-authentication")
    assert failed == []


@pytest.mark.parametrize("args, message", [
    (["--sasl-mechanisms", "OAUTHBEARER"], "needs --oauthbearer-jwks"),
    (["--oauthbearer-jwks", "{jwks}"], "has no OAUTHBEARER"),
    (["--oauthbearer-expected-issuer", "x"], "needs --oauthbearer-jwks FILE"),
    (["--sasl-mechanisms", "OAUTHBEARER", "--oauthbearer-jwks", "{bad}"], "no \"keys\" array"),
])
def test_oauth_flags_that_cannot_work_are_refused_at_start(tmp_path, idp, args, message):
    jwks, bad = tmp_path / "jwks.json", tmp_path / "bad.json"
    write_jwks(jwks, idp)
    bad.write_text("{}")
    args = [a.format(jwks=jwks, bad=bad) for a in args]
    out = subprocess.run([BINARY, "serve", "--data-dir", str(tmp_path / "d"), "--metrics-port", "0",
                          "--listener", "SASL_PLAINTEXT://127.0.0.1:19470", *args],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
