"""TLS on SSL and SASL_SSL listeners beside a PLAINTEXT one, through real
clients: kcat (librdkafka 2.0), confluent-kafka and kafka-python produce
and consume over TLS 1.3 and TLS 1.2, also data read cold from the
segment files (copied under TLS, spliced on PLAINTEXT); SASL over TLS
with PLAIN and SCRAM; client certificates (mTLS) whose subjects are
principals the ACLs name; an untrusted certificate either way, a
plaintext client on a TLS port and broken handshakes refused cleanly
while the broker serves on; a renewed certificate served without a
restart. The certificates are made for each run with openssl."""

import os
import random
import shutil
import socket
import ssl
import subprocess

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)
from kafka import KafkaConsumer, KafkaProducer

from conftest import BINARY, wait_until
from test_bad_input import recv_frame, request
from test_sasl import counter, produce

TIMEOUT_S = 30
ALICE_DN = "CN=alice,OU=eng,O=Corelog,C=SE"


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=TIMEOUT_S)


class Pki:
    """A CA, a server certificate for 127.0.0.1 and client certificates,
    and a second CA nobody trusts, as PEM files in `root`."""

    def __init__(self, root):
        self.root = root
        self.ca = self.authority("ca", "/CN=Corelog test CA")
        self.rogue_ca = self.authority("rogue-ca", "/CN=Nobody's CA")

    def path(self, name):
        return str(self.root / name)

    def authority(self, name, subject):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.path(f"{name}.key"), "-out", self.path(f"{name}.pem"), "-days", "2",
                "-subj", subject)
        return name

    def issue(self, name, subject, ca, usage):
        """A leaf certificate `name.pem` / `name.key` signed by `ca`, v3
        with the extensions webpki insists on."""
        ext = self.root / f"{name}.ext"
        san = "subjectAltName=IP:127.0.0.1,DNS:localhost\n" if usage == "serverAuth" else ""
        ext.write_text(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n{san}")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.path(f"{name}.key"), "-out", self.path(f"{name}.csr"), "-subj", subject)
        openssl("x509", "-req", "-in", self.path(f"{name}.csr"), "-CA", self.path(f"{ca}.pem"),
                "-CAkey", self.path(f"{ca}.key"), "-CAcreateserial", "-out", self.path(f"{name}.pem"),
                "-days", "2", "-extfile", str(ext))
        return self.path(f"{name}.pem"), self.path(f"{name}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.issue("server", "/CN=localhost", "ca", "serverAuth")
    p.issue("alice", "/C=SE/O=Corelog/OU=eng/CN=alice", "ca", "clientAuth")
    p.issue("bob", "/CN=bob", "ca", "clientAuth")
    p.issue("mallory", "/CN=alice", "rogue-ca", "clientAuth")
    p.issue("impostor", "/CN=localhost", "rogue-ca", "serverAuth")
    return p


def tls_args(pki, *more):
    return ["--ssl-certificate", pki.path("server.pem"), "--ssl-key", pki.path("server.key"), *more]


@pytest.fixture
def tls_broker(make_broker, pki):
    seeds = ["--scram-credential", "alice:SCRAM-SHA-256:alice-secret",
             "--scram-credential", "alice:SCRAM-SHA-512:alice-secret"]
    return make_broker(listeners=("PLAINTEXT", "SSL", "SASL_SSL"), extra_args=tls_args(pki) + seeds).start()


def ssl_conf(broker, pki, listener="SSL", **more):
    return {"bootstrap.servers": broker.bootstrap_of(listener), "security.protocol": listener,
            "ssl.ca.location": pki.path("ca.pem"), **more}


def consume(conf, topic, n):
    c = Consumer({**conf, "group.id": f"g-{topic}-{conf['security.protocol']}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    wait_until(lambda: got.extend(m.value() for m in c.consume(100, 0.2) if not m.error()) or len(got) >= n,
               TIMEOUT_S, f"{n} records of {topic}")
    c.close()
    return got


def handshake(broker, pki, listener="SSL", maximum=None, cert=None):
    """A TLS connection of Python's ssl module; returns the socket."""
    context = ssl.create_default_context(cafile=pki.path("ca.pem"))
    if maximum is not None:
        context.maximum_version = maximum
    if cert is not None:
        context.load_cert_chain(pki.path(f"{cert}.pem"), pki.path(f"{cert}.key"))
    raw = socket.create_connection(("127.0.0.1", broker.listener_ports[listener]), timeout=TIMEOUT_S)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def api_versions_over(s):
    s.sendall(request(18, 0, 7))
    frame = recv_frame(s)
    assert frame[:4] == (7).to_bytes(4, "big") and frame[4:6] == b"\x00\x00"


def test_kcat_confluent_and_kafka_python_produce_and_consume_over_tls(tls_broker, pki):
    topic = "over-tls"
    values = [f"v{i}".encode() for i in range(300)]
    assert produce(ssl_conf(tls_broker, pki), topic, values[:100]) == []
    kp = KafkaProducer(bootstrap_servers=tls_broker.bootstrap_of("SSL"), security_protocol="SSL",
                       ssl_cafile=pki.path("ca.pem"), acks="all")
    for v in values[100:200]:
        kp.send(topic, v)
    kp.flush(TIMEOUT_S)
    kp.close()
    kcat_tls = ["kcat", "-b", tls_broker.bootstrap_of("SSL"), "-X", "security.protocol=SSL",
                "-X", f"ssl.ca.location={pki.path('ca.pem')}"]
    out = subprocess.run(kcat_tls + ["-P", "-t", topic], input=b"\n".join(values[200:]), capture_output=True,
                         timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr
    assert consume(ssl_conf(tls_broker, pki), topic, 300) == values
    kc = KafkaConsumer(topic, bootstrap_servers=tls_broker.bootstrap_of("SSL"), security_protocol="SSL",
                       ssl_cafile=pki.path("ca.pem"), auto_offset_reset="earliest", consumer_timeout_ms=5000)
    got = []
    wait_until(lambda: got.extend(m.value for m in kc) or len(got) >= 300, TIMEOUT_S, "kafka-python's read")
    kc.close()
    assert got == values
    out = subprocess.run(kcat_tls + ["-C", "-t", topic, "-e", "-o", "beginning"], capture_output=True,
                         timeout=TIMEOUT_S)
    assert out.returncode == 0 and out.stdout.split(b"\n")[:-1] == values, out.stderr
    # Metadata on the TLS port names TLS ports.
    md = AdminClient(ssl_conf(tls_broker, pki)).list_topics(timeout=TIMEOUT_S)
    assert sorted(b.port for b in md.brokers.values()) == \
        [tls_broker.listener_ports["SSL"], tls_broker.listener_ports["SSL"] + 1]


@pytest.mark.parametrize("maximum, name", [(None, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")])
def test_tls_1_2_and_1_3_are_served(tls_broker, pki, maximum, name):
    with handshake(tls_broker, pki, maximum=maximum) as s:
        assert s.version() == name
        api_versions_over(s)


def test_records_read_cold_from_the_files_arrive_whole_over_tls(tls_broker, pki):
    """After a restart the records come from the segment files: spliced to
    PLAINTEXT clients, read and encrypted for TLS ones; both see the same."""
    topic = "cold"
    values = [bytes([i % 251]) * (1000 + i) for i in range(400)]
    assert produce({"bootstrap.servers": tls_broker.bootstrap, "linger.ms": 5}, topic, values) == []
    tls_broker.restart()
    assert consume(ssl_conf(tls_broker, pki), topic, 400) == values
    assert consume({"bootstrap.servers": tls_broker.bootstrap, "security.protocol": "PLAINTEXT"}, topic,
                   400) == values


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_logs_in_and_a_wrong_password_is_refused(tls_broker, pki, mechanism):
    conf = ssl_conf(tls_broker, pki, "SASL_SSL", **{"sasl.mechanism": mechanism, "sasl.username": "alice",
                                                    "sasl.password": "alice-secret"})
    topic = f"sasl-ssl-{mechanism}"
    values = [f"{mechanism}-{i}".encode() for i in range(20)]
    assert produce(conf, topic, values) == []
    kc = KafkaConsumer(topic, bootstrap_servers=tls_broker.bootstrap_of("SASL_SSL"), security_protocol="SASL_SSL",
                       ssl_cafile=pki.path("ca.pem"), sasl_mechanism=mechanism, sasl_plain_username="alice",
                       sasl_plain_password="alice-secret", auto_offset_reset="earliest", consumer_timeout_ms=5000)
    got = []
    wait_until(lambda: got.extend(m.value for m in kc) or len(got) >= 20, TIMEOUT_S, "kafka-python over SASL_SSL")
    kc.close()
    assert got == values
    before = counter(tls_broker, "corelog_failed_authentication_total")
    errors = []
    p = Producer({**conf, "sasl.password": "wrong-secret"})
    p.produce(topic, b"x", on_delivery=lambda e, m: errors.append(e))
    wait_until(lambda: p.poll(0.1) is not None and any(e.code() == KafkaError._AUTHENTICATION for e in errors)
               or counter(tls_broker, "corelog_failed_authentication_total") > before, TIMEOUT_S,
               "the refusal")
    assert "wrong-secret" not in tls_broker.log()


def test_kcat_logs_in_with_scram_over_tls(tls_broker, pki):
    out = subprocess.run(["kcat", "-b", tls_broker.bootstrap_of("SASL_SSL"), "-X", "security.protocol=SASL_SSL",
                          "-X", f"ssl.ca.location={pki.path('ca.pem')}", "-X", "sasl.mechanism=SCRAM-SHA-512",
                          "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret", "-L"],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0 and "2 brokers" in out.stdout, out.stderr


def test_a_server_certificate_from_an_unknown_ca_is_refused_by_the_client(make_broker, pki):
    b = make_broker(listeners=("PLAINTEXT", "SSL"), extra_args=["--ssl-certificate", pki.path("impostor.pem"),
                                                                 "--ssl-key", pki.path("impostor.key")]).start()
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(b, pki)
    out = subprocess.run(["kcat", "-b", b.bootstrap_of("SSL"), "-X", "security.protocol=SSL",
                          "-X", f"ssl.ca.location={pki.path('ca.pem')}", "-L", "-m", "3"],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0 and "certificate verify failed" in out.stderr, out.stderr


def plain_is_refused(broker, port):
    """A Kafka request in clear on a TLS port: the handshake fails and the
    connection closes, whatever the broker wrote first (a TLS alert)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
        s.sendall(request(18, 0, 1))
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return not data.startswith(b"\x00\x00")


def test_a_plaintext_client_on_a_tls_port_and_broken_handshakes_are_refused_cleanly(tls_broker, pki):
    port = tls_broker.listener_ports["SSL"]
    before = counter(tls_broker, "corelog_failed_authentication_total")
    assert plain_is_refused(tls_broker, port)
    # A ClientHello cut short, then garbage records: closed, nothing else.
    hello = bytes.fromhex("16030100c8010000c40303") + b"\x00" * 20
    for payload in [hello, b"\x16\x03\x03\xff\xff" + b"\x01" * 100, b"\x17\x03\x03\x00\x05hello", b"\x00" * 64]:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
    wait_until(lambda: counter(tls_broker, "corelog_failed_authentication_total") >= before + 5, TIMEOUT_S,
               "five failed handshakes counted")
    assert "TLS handshake failed" in tls_broker.log()
    # A TLS client on the PLAINTEXT port is named in the log.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        raw = socket.create_connection(("127.0.0.1", tls_broker.port), timeout=TIMEOUT_S)
        ssl.create_default_context(cafile=pki.path("ca.pem")).wrap_socket(raw, server_hostname="127.0.0.1")
    wait_until(lambda: "a TLS client on a plaintext listener" in tls_broker.log(), TIMEOUT_S, "the hint")
    with handshake(tls_broker, pki) as s:
        api_versions_over(s)


def test_a_stalled_handshake_is_closed(make_broker, pki):
    b = make_broker(listeners=("PLAINTEXT", "SSL"),
                    extra_args=tls_args(pki, "--request-arrival-timeout-ms", "300")).start()
    with socket.create_connection(("127.0.0.1", b.listener_ports["SSL"]), timeout=TIMEOUT_S) as s:
        assert s.recv(4096) == b""
    assert "not done within" in b.log()


@pytest.fixture
def mtls_broker(make_broker, pki):
    args = tls_args(pki, "--ssl-client-ca", pki.path("ca.pem"), "--authorizer", "on",
                    "--super-users", "User:ANONYMOUS")
    return make_broker(listeners=("PLAINTEXT", "SSL"), extra_args=args).start()


def cert_conf(broker, pki, who):
    return ssl_conf(broker, pki, **{"ssl.certificate.location": pki.path(f"{who}.pem"),
                                    "ssl.key.location": pki.path(f"{who}.key")})


def test_client_certificates_are_principals_the_acls_name(mtls_broker, pki):
    """The authorizer sees alice's subject as Kafka prints it; bob, with no
    ACL, is denied; a client without a certificate or with one from an
    unknown CA does not get past the handshake."""
    admin = AdminClient({"bootstrap.servers": mtls_broker.bootstrap})
    bindings = [AclBinding(kind, prefix, ResourcePatternType.PREFIXED, f"User:{ALICE_DN}", "*",
                           AclOperation.ALL, AclPermissionType.ALLOW)
                for kind, prefix in [(ResourceType.TOPIC, "mtls-"), (ResourceType.GROUP, "g-mtls-")]]
    for f in admin.create_acls(bindings).values():
        f.result(TIMEOUT_S)
    admin.create_topics([NewTopic("mtls-a", 1, 1)])
    wait_until(lambda: "mtls-a" in admin.list_topics(timeout=TIMEOUT_S).topics, TIMEOUT_S, "the topic")
    assert produce(cert_conf(mtls_broker, pki, "alice"), "mtls-a", [b"from alice"]) == []
    errors = produce(cert_conf(mtls_broker, pki, "bob"), "mtls-a", [b"from bob"])
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert consume(cert_conf(mtls_broker, pki, "alice"), "mtls-a", 1) == [b"from alice"]
    for who in [None, "mallory"]:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with handshake(mtls_broker, pki, cert=who) as s:
                # TLS 1.3: the server's verdict on the client's certificate
                # comes after the client's handshake is done.
                api_versions_over(s)
    assert "invalid peer certificate" in mtls_broker.log() or "peer sent no certificates" in mtls_broker.log()


def test_requested_client_auth_leaves_clients_without_a_certificate_anonymous(make_broker, pki):
    args = tls_args(pki, "--ssl-client-ca", pki.path("ca.pem"), "--ssl-client-auth", "requested",
                    "--authorizer", "on", "--super-users", f"User:{ALICE_DN}")
    b = make_broker(listeners=("PLAINTEXT", "SSL"), extra_args=args).start()
    assert produce(cert_conf(b, pki, "alice"), "requested", [b"x"]) == []
    errors = produce(ssl_conf(b, pki), "requested", [b"y"])
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def test_a_renewed_certificate_is_served_without_a_restart(make_broker, pki, tmp_path):
    """The files are replaced in place; new connections get the new
    certificate, the connection already open keeps working."""
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.path("server.pem"), cert)
    shutil.copy(pki.path("server.key"), key)
    b = make_broker(listeners=("PLAINTEXT", "SSL"),
                    extra_args=["--ssl-certificate", str(cert), "--ssl-key", str(key)]).start()
    first = handshake(b, pki)
    old = first.getpeercert(binary_form=True)
    new_pem, new_key = pki.issue("renewed", "/CN=localhost", "ca", "serverAuth")
    # The key first, then the certificate: a look between the two copies
    # finds a mismatched pair, keeps the old one and looks again.
    shutil.copy(new_key, key)
    shutil.copy(new_pem, cert)
    renewed = open(new_pem).read()
    served = []

    def new_certificate():
        with handshake(b, pki) as s:
            der = s.getpeercert(binary_form=True)
        served.append(der)
        return der != old

    wait_until(new_certificate, TIMEOUT_S, "the renewed certificate")
    assert ssl.DER_cert_to_PEM_cert(served[-1]).split() == renewed.split()
    api_versions_over(first)
    first.close()
    assert "TLS: reloaded" in b.log()


@pytest.mark.parametrize("args, message", [
    (["--listener", "SSL://127.0.0.1:19410"], "needs --ssl-certificate and --ssl-key"),
    (["--ssl-certificate", "/nonexistent.pem", "--ssl-key", "/nonexistent.key"], "no listener is SSL or SASL_SSL"),
    (["--listener", "SSL://127.0.0.1:19410", "--ssl-certificate", "/nonexistent.pem", "--ssl-key", "/x.key"],
     "/nonexistent.pem"),
    (["--ssl-key", "/x.key"], "needs both --ssl-certificate and --ssl-key"),
    (["--ssl-client-auth", "sometimes"], "expected required, requested or none"),
])
def test_tls_flags_that_cannot_work_are_refused_at_start(tmp_path, args, message):
    out = subprocess.run([BINARY, "serve", "--data-dir",
                          str(tmp_path / "d"), "--metrics-port", "0", *args],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


def test_client_auth_without_a_client_ca_is_refused_at_start(tmp_path, pki):
    out = subprocess.run([BINARY, "serve", "--data-dir", str(tmp_path / "d"),
                          "--metrics-port", "0", "--listener", "SSL://127.0.0.1:19420",
                          *tls_args(pki, "--ssl-client-auth", "required")],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0 and "needs --ssl-client-ca" in out.stderr, out.stderr


def client_hello(pki):
    """The first flight of a real TLS client (Python's ssl), as bytes."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context(cafile=pki.path("ca.pem")).wrap_bio(incoming, outgoing,
                                                                         server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_mutated_client_hellos_never_hurt_the_broker(tls_broker, pki):
    """A seeded fuzzer of the handshake: a real ClientHello with bits
    flipped, cut short, lengths set to extremes or junk appended, each on
    its own connection. Every one ends in a closed connection (or a
    handshake the broker then waits on, closed by the client); the broker
    keeps serving TLS and PLAINTEXT clients."""
    seed = int(os.environ.get("CORELOG_FUZZ_SEED", "20261205"))
    rng = random.Random(seed)
    hello = client_hello(pki)
    port = tls_broker.listener_ports["SSL"]
    for i in range(300):
        data = bytearray(hello)
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            data = data[:rng.randrange(len(data))]
        elif kind == 2:
            at = rng.randrange(len(data) - 1)
            data[at:at + 2] = rng.choice([b"\xff\xff", b"\x00\x00", b"\x7f\xff"])
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
            s.sendall(bytes(data))
            s.shutdown(socket.SHUT_WR)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        assert tls_broker.proc.poll() is None, f"seed {seed}, case {i}: the broker died on {bytes(data).hex()}"
    with handshake(tls_broker, pki) as s:
        api_versions_over(s)
    assert produce({"bootstrap.servers": tls_broker.bootstrap}, "after-fuzz", [b"ok"]) == []
