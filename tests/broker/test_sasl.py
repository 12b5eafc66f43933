"""SASL on a SASL_PLAINTEXT listener beside a PLAINTEXT one, through real
clients: librdkafka (confluent-kafka, and kcat's older librdkafka 2.0)
and kafka-python log in with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
against the SCRAM credentials in the metadata log; Metadata and
FindCoordinator answer the listener the request came in on; a wrong
password is refused as Kafka refuses it (and counted, and never logged);
nothing but ApiVersions and the SASL APIs passes before a login; KIP-368
sessions end, and librdkafka re-authenticates on its connection."""

import json
import socket
import struct
import subprocess
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AdminClient, ConfigResource, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer

from conftest import BINARY, error_codes, wait_until
from test_bad_input import closed_by_broker, recv_frame, request

TIMEOUT_S = 30
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SEEDS = ["--scram-credential", "alice:SCRAM-SHA-256:alice-secret",
         "--scram-credential", "alice:SCRAM-SHA-512:alice-secret"]
LISTENERS = ("PLAINTEXT", "SASL_PLAINTEXT")


@pytest.fixture
def sasl_broker(make_broker):
    return make_broker(listeners=LISTENERS, extra_args=SEEDS).start()


def rdkafka_conf(broker, mechanism, user="alice", password="alice-secret"):
    return {"bootstrap.servers": broker.bootstrap_of("SASL_PLAINTEXT"), "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def python_conf(broker, mechanism):
    return dict(bootstrap_servers=broker.bootstrap_of("SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=mechanism, sasl_plain_username="alice", sasl_plain_password="alice-secret")


def produce(conf, topic, values):
    """Produces with librdkafka; returns the delivery errors."""
    errors = []
    p = Producer({**conf, "acks": "all"})
    for v in values:
        p.produce(topic, v, on_delivery=lambda e, m: errors.append(e) if e else None)
    assert p.flush(TIMEOUT_S) == 0
    return errors


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_each_mechanism_logs_in_with_librdkafka_and_kafka_python(sasl_broker, mechanism):
    topic = f"sasl-{mechanism}"
    values = [f"{mechanism}-{i}".encode() for i in range(50)]
    assert produce(rdkafka_conf(sasl_broker, mechanism), topic, values) == []

    # kafka-python reads them in a group: FindCoordinator on this listener.
    consumer = KafkaConsumer(topic, group_id=f"g-{mechanism}", auto_offset_reset="earliest",
                             consumer_timeout_ms=TIMEOUT_S * 1000, **python_conf(sasl_broker, mechanism))
    got = []
    for m in consumer:
        got.append(m.value)
        if len(got) == len(values):
            break
    consumer.close()
    assert sorted(got) == sorted(values)

    # And kafka-python writes, librdkafka (kcat's 2.0) reads it back.
    producer = KafkaProducer(acks="all", **python_conf(sasl_broker, mechanism))
    producer.send(topic, b"from-kafka-python").get(timeout=TIMEOUT_S)
    producer.close()
    out = subprocess.run(
        ["kcat", "-C", "-b", sasl_broker.bootstrap_of("SASL_PLAINTEXT"), "-X", "security.protocol=SASL_PLAINTEXT",
         "-X", f"sasl.mechanism={mechanism}", "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret",
         "-t", topic, "-o", "beginning", "-e", "-q", "-c", str(len(values) + 1)],
        capture_output=True, text=True, timeout=TIMEOUT_S * 2)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted([v.decode() for v in values] + ["from-kafka-python"])


def ports_in_metadata(bootstrap, extra=()):
    out = subprocess.run(["kcat", "-L", "-J", "-b", bootstrap, *extra], capture_output=True, text=True,
                         timeout=TIMEOUT_S * 2)
    assert out.returncode == 0, out.stderr
    return sorted(int(b["name"].rsplit(":", 1)[1]) for b in json.loads(out.stdout)["brokers"])


def test_metadata_answers_the_listener_the_request_came_in_on(sasl_broker):
    plain = sasl_broker.listener_ports["PLAINTEXT"]
    sasl = sasl_broker.listener_ports["SASL_PLAINTEXT"]
    assert ports_in_metadata(sasl_broker.bootstrap_of("PLAINTEXT")) == [plain, plain + 1]
    assert ports_in_metadata(sasl_broker.bootstrap_of("SASL_PLAINTEXT"), [
        "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=SCRAM-SHA-512",
        "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]) == [sasl, sasl + 1]
    # The broker's own view of its listeners (DescribeConfigs, BROKER).
    admin = AdminClient({"bootstrap.servers": sasl_broker.bootstrap_of("PLAINTEXT")})
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["listeners"].value == \
        f"PLAINTEXT://127.0.0.1:{plain + 1},SASL_PLAINTEXT://127.0.0.1:{sasl + 1}"
    assert configs["sasl.enabled.mechanisms"].value == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"


def counter(broker, name):
    """A counter of /metrics, every shard's together."""
    with urllib.request.urlopen(broker.metrics_url, timeout=TIMEOUT_S) as r:
        text = r.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def failed_authentications(broker):
    return counter(broker, "corelog_failed_authentication_total")


def refused(producer, errors):
    producer.poll(0.1)
    return any(e.code() == KafkaError._AUTHENTICATION for e in errors)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_password_is_refused_counted_and_never_logged(sasl_broker, mechanism):
    before = failed_authentications(sasl_broker)
    errors = []
    p = Producer({**rdkafka_conf(sasl_broker, mechanism, password="not-her-password"),
                  "error_cb": errors.append})
    p.produce("never", b"x")
    wait_until(lambda: refused(p, errors), TIMEOUT_S, "an authentication error")
    assert "Invalid username or password" in str([e.str() for e in errors])
    # Nothing was written: the record is still queued, unacknowledged.
    assert len(p) == 1
    p.purge()
    # An unknown user gets the same answer as a wrong password.
    errors.clear()
    p = Producer({**rdkafka_conf(sasl_broker, mechanism, user="mallory"), "error_cb": errors.append})
    p.produce("never", b"x")
    wait_until(lambda: refused(p, errors), TIMEOUT_S, "an authentication error")
    assert "Invalid username or password" in str([e.str() for e in errors])
    p.purge()
    wait_until(lambda: failed_authentications(sasl_broker) >= before + 2, TIMEOUT_S, "the failures counted")
    assert "not-her-password" not in sasl_broker.log()
    assert "alice-secret" not in sasl_broker.log()


def sasl_socket(broker):
    return socket.create_connection(("127.0.0.1", broker.listener_ports["SASL_PLAINTEXT"]), timeout=TIMEOUT_S)


def test_only_api_versions_and_sasl_pass_before_a_login(sasl_broker):
    s = sasl_socket(sasl_broker)
    s.sendall(request(18, 0, 1))  # ApiVersions v0: answered
    body = recv_frame(s)
    assert struct.unpack(">ih", body[:6]) == (1, 0)
    s.sendall(request(3, 1, 2, body=struct.pack(">i", -1)))  # Metadata v1: closes
    assert closed_by_broker(s)
    s.close()
    # Nor may a request before a login be large (Kafka's 512 KiB).
    s = sasl_socket(sasl_broker)
    s.sendall(struct.pack(">i", 600 * 1024) + b"\0" * 1024)
    assert closed_by_broker(s)
    s.close()
    # The same request on the PLAINTEXT listener is served, and a
    # SaslHandshake there answers ILLEGAL_SASL_STATE (34), as Kafka's.
    s = socket.create_connection(("127.0.0.1", sasl_broker.port), timeout=TIMEOUT_S)
    s.sendall(request(3, 1, 2, body=struct.pack(">i", -1)))
    assert struct.unpack(">i", recv_frame(s)[:4]) == (2,)
    s.sendall(request(17, 1, 3, body=struct.pack(">h", 5) + b"PLAIN"))
    assert struct.unpack(">ih", recv_frame(s)[:6]) == (3, 34)
    s.close()


def test_a_v0_handshake_takes_raw_tokens(sasl_broker):
    """SaslHandshake v0 (pre-KIP-152 clients): the token follows with only
    its size, and the answer comes back the same way."""
    s = sasl_socket(sasl_broker)
    s.sendall(request(17, 0, 1, body=struct.pack(">h", 5) + b"PLAIN"))
    assert struct.unpack(">ih", recv_frame(s)[:6]) == (1, 0)
    token = b"\0alice\0alice-secret"
    s.sendall(struct.pack(">i", len(token)) + token)
    assert recv_frame(s) == b""  # PLAIN's empty answer
    s.sendall(request(3, 1, 2, body=struct.pack(">i", -1)))  # now served
    assert struct.unpack(">i", recv_frame(s)[:4]) == (2,)
    s.close()
    # A token shorter than any Kafka request is still a token: a wrong
    # password here is a failed login (counted), not a bad frame.
    before = failed_authentications(sasl_broker)
    s = sasl_socket(sasl_broker)
    s.sendall(request(17, 0, 1, body=struct.pack(">h", 5) + b"PLAIN"))
    recv_frame(s)
    s.sendall(struct.pack(">i", 8) + b"\0alice\0x")
    assert closed_by_broker(s)
    s.close()
    wait_until(lambda: failed_authentications(sasl_broker) == before + 1, TIMEOUT_S, "the failed login counted")


def test_credentials_altered_through_the_admin_api_log_in_at_once(sasl_broker):
    admin = AdminClient({"bootstrap.servers": sasl_broker.bootstrap_of("PLAINTEXT")})
    upsert = UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          b"carol-secret")
    assert error_codes(admin.alter_user_scram_credentials([upsert]), TIMEOUT_S) == {"carol": None}
    # The controller answers once every shard applied the change: a login
    # right after it works, whichever shard the client reaches.
    for mechanism in ["SCRAM-SHA-512", "PLAIN"]:
        conf = rdkafka_conf(sasl_broker, mechanism, user="carol", password="carol-secret")
        assert produce(conf, f"carol-{mechanism}", [b"1", b"2"]) == []


def test_sessions_end_and_librdkafka_reauthenticates_in_band(make_broker):
    # Long enough for librdkafka to re-authenticate (at 85-95% of a session)
    # well before the end on a busy machine.
    b = make_broker(listeners=LISTENERS, extra_args=SEEDS + ["--connections-max-reauth-ms", "5000"]).start()
    # A client that never re-authenticates is closed once its session ends.
    s = sasl_socket(b)
    s.sendall(request(17, 1, 1, body=struct.pack(">h", 5) + b"PLAIN"))
    recv_frame(s)
    token = b"\0alice\0alice-secret"
    s.sendall(request(36, 1, 2, body=struct.pack(">i", len(token)) + token))
    answer = recv_frame(s)
    assert struct.unpack(">ih", answer[:6]) == (2, 0)
    assert struct.unpack(">q", answer[-8:]) == (5000,)  # session_lifetime_ms

    def closed_after_metadata():
        try:
            s.sendall(request(3, 1, 3, body=struct.pack(">i", -1)))
            recv_frame(s)
            return False
        except (AssertionError, ConnectionError):
            return True

    wait_until(closed_after_metadata, TIMEOUT_S, "the expired session closed")
    s.close()
    wait_until(lambda: "expired without re-authentication" in b.log(), TIMEOUT_S, "the close logged")

    # librdkafka re-authenticates before its session ends: a producer
    # across several sessions delivers everything, and none of its
    # connections is closed for an expired session.
    closed = counter(b, "corelog_protocol_errors_total")
    conf = {**rdkafka_conf(b, "SCRAM-SHA-256"), "acks": "all"}
    p = Producer(conf)
    errors, delivered = [], []

    def one_more():
        p.produce("reauth", str(len(delivered)).encode(),
                  on_delivery=lambda e, m: errors.append(e) if e else delivered.append(m.offset()))
        assert p.flush(TIMEOUT_S) == 0
        return counter(b, "corelog_successful_reauthentication_total") >= 2

    wait_until(one_more, TIMEOUT_S, "two re-authentications while producing")
    assert errors == [] and sorted(delivered) == list(range(len(delivered)))
    assert counter(b, "corelog_protocol_errors_total") == closed


def run_serve(tmp_path, *args):
    return subprocess.run([BINARY, "serve", "--data-dir", str(tmp_path / "d"), "--metrics-port", "0", *args],
                          capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.parametrize("args, message", [
    (["--listener", "SASL_PLAINTEXT://127.0.0.1:19310", "--port", "19300"], "replaces --host and --port"),
    (["--listener", "TLS://127.0.0.1:19310"], "not a listener name"),
    (["--listener", "PLAINTEXT://127.0.0.1:19310", "--listener", "PLAINTEXT://127.0.0.1:19320"], "given twice"),
    (["--listener", "PLAINTEXT://127.0.0.1:19310", "--listener", "SASL_PLAINTEXT://127.0.0.1:19311",
      "--shards", "2"], "overlap"),
    (["--sasl-mechanisms", "PLAIN,GSSAPI"], "expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
])
def test_listener_flags_that_cannot_work_are_refused_at_start(tmp_path, args, message):
    out = run_serve(tmp_path, *args)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
