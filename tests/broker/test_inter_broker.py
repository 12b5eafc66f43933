"""Brokers authenticate to each other (issue 17): a cluster whose only
listener is SASL_PLAINTEXT, SASL_SSL or SSL replicates, with the
authorizer on, as the principal its `--inter-broker-credential` or its
certificate proves, and its controllers' ports speak TLS when that
listener does; a wrong password, a principal without ClusterAction and a
peer certificate from another CA are refused and logged, and no password
is ever logged. Real nodes on loopback, librdkafka clients;
every wait is bounded."""

import socket
import ssl
import struct
import subprocess
import urllib.request
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BINARY, free_port_range, wait_until
from test_cluster import make_cluster  # noqa: F401
from test_tls import Pki

TIMEOUT_S = 30
BROKER_SECRET = "broker-s3cret"
SEEDS = ["--scram-credential", f"broker:SCRAM-SHA-512:{BROKER_SECRET}",
         "--scram-credential", "alice:SCRAM-SHA-256:alice-s3cret"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Brokers' certificates serve both ends of a connection, as Kafka's
    keystore does: serverAuth and clientAuth."""
    p = Pki(tmp_path_factory.mktemp("pki"))
    for name, ca in [("node", "ca"), ("rogue-node", "rogue-ca")]:
        ext = p.root / f"{name}.ext"
        ext.write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n"
                       "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", p.path(f"{name}.key"), "-out", p.path(f"{name}.csr"),
                        "-subj", "/O=Corelog/CN=broker"], check=True, capture_output=True, timeout=TIMEOUT_S)
        subprocess.run(["openssl", "x509", "-req", "-in", p.path(f"{name}.csr"), "-CA", p.path(f"{ca}.pem"),
                        "-CAkey", p.path(f"{ca}.key"), "-CAcreateserial", "-out", p.path(f"{name}.pem"),
                        "-days", "2", "-extfile", str(ext)], check=True, capture_output=True, timeout=TIMEOUT_S)
    return p


def tls(pki, name="node", *more):
    return ["--ssl-certificate", pki.path(f"{name}.pem"), "--ssl-key", pki.path(f"{name}.key"),
            "--ssl-client-ca", pki.path("ca.pem"), *more]


def client_conf(cluster, protocol, pki=None, user="broker", password=BROKER_SECRET,
                mechanism="SCRAM-SHA-512"):
    conf = {"bootstrap.servers": cluster.bootstraps(), "security.protocol": protocol}
    if "SASL" in protocol:
        conf.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
    if "SSL" in protocol:
        conf["ssl.ca.location"] = pki.path("ca.pem")
    if protocol == "SSL":
        conf.update({"ssl.certificate.location": pki.path("node.pem"), "ssl.key.location": pki.path("node.key")})
    return conf


def create(conf, new_topic):
    admin = AdminClient(conf)
    futures = admin.create_topics([new_topic], operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
    futures[new_topic.topic].result(TIMEOUT_S)


def replicate(conf, n=200):
    """Creates a topic on every node (RF 3, min.insync.replicas 3) and
    produces `n` records with acks=all: each acknowledged one is on all
    three replicas, so every follower fetched it. Returns the errors of
    records not acknowledged."""
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    create(conf, NewTopic(topic, 1, 3, config={"min.insync.replicas": "3"}))
    failed = []
    p = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "message.timeout.ms": TIMEOUT_S * 1000})
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), partition=0,
                  on_delivery=lambda err, msg: err and failed.append(err))
        p.poll(0)
    assert p.flush(TIMEOUT_S * 2) == 0, "undelivered records"
    return topic, failed


def assert_no_secret_logged(cluster):
    log = cluster.log()
    assert BROKER_SECRET not in log and "alice-s3cret" not in log


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_brokers_replicate_over_sasl_as_a_super_user(make_cluster, mechanism):
    c = make_cluster(listener="SASL_PLAINTEXT", extra_args=[
        *SEEDS, "--inter-broker-credential", f"broker:{mechanism}:{BROKER_SECRET}",
        "--authorizer", "on", "--super-users", "User:broker"]).start()
    topic, failed = replicate(client_conf(c, "SASL_PLAINTEXT"))
    assert failed == []
    assert_no_secret_logged(c)


def test_brokers_replicate_over_sasl_ssl(make_cluster, pki, tmp_path):
    """The credential from a file, as a service would keep it."""
    credential = tmp_path / "broker.credential"
    credential.write_text(f"broker:SCRAM-SHA-512:{BROKER_SECRET}\n")
    c = make_cluster(listener="SASL_SSL", extra_args=[
        *SEEDS, *tls(pki, "node", "--ssl-client-auth", "none"),
        "--inter-broker-credential-file", str(credential),
        "--authorizer", "on", "--super-users", "User:broker"]).start()
    _, failed = replicate(client_conf(c, "SASL_SSL", pki))
    assert failed == []
    assert_no_secret_logged(c)


def test_brokers_replicate_over_mutual_tls_as_their_certificate_s_principal(make_cluster, pki):
    c = make_cluster(listener="SSL", extra_args=[
        *tls(pki), "--authorizer", "on", "--super-users", "User:CN=broker,O=Corelog"]).start()
    _, failed = replicate(client_conf(c, "SSL", pki))
    assert failed == []
    assert "not in --super-users" not in c.log()


def test_controller_ports_speak_tls_when_the_inter_broker_listener_does(make_cluster, pki):
    """On an SSL cluster a controller's port completes a TLS handshake
    with a client certificate of the cluster's CA, presenting the node's
    certificate; a request frame sent in the clear is answered by a TLS
    alert at most, never by a frame; a handshake without a client
    certificate is refused."""
    c = make_cluster(listener="SSL", extra_args=[*tls(pki)]).start()
    _, failed = replicate(client_conf(c, "SSL", pki), n=20)
    assert failed == []
    port = c.controller_ports[1]
    context = ssl.create_default_context(cafile=pki.path("ca.pem"))
    context.load_cert_chain(pki.path("node.pem"), pki.path("node.key"))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            assert subject == {"organizationName": "Corelog", "commonName": "broker"}
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
        s.sendall(struct.pack(">IB", 3, 2) + b"{}")
        answer = b""
        try:
            while chunk := s.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
        assert answer == b"" or answer[0] == 0x15, answer  # 0x15: a TLS alert record
    anonymous = ssl.create_default_context(cafile=pki.path("ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with anonymous.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                # TLS 1.3: the server checks the client's certificate after
                # the client's side of the handshake; its alert comes here.
                s.sendall(struct.pack(">IB", 3, 2) + b"{}")
                assert s.recv(4096) == b""
    wait_until(lambda: "controller: refused the connection from" in c.nodes[1].log()
               and "TLS handshake" in c.nodes[1].log(), TIMEOUT_S, "the refusal logged")


def test_followers_log_in_again_before_their_session_ends(make_cluster):
    """KIP-368 between brokers: sessions last 2 s; the followers' fetch
    connections log in again on the connection before theirs ends, so none
    is closed by its leader (which would show as a failed fetch), while
    acks=all produces keep being acknowledged through several sessions."""
    metrics = {n: free_port_range(1) for n in (1, 2, 3)}
    c = make_cluster(listener="SASL_PLAINTEXT", extra_args=[
        *SEEDS, "--inter-broker-credential", f"broker:SCRAM-SHA-512:{BROKER_SECRET}",
        "--connections-max-reauth-ms", "2000"],
        node_args={n: ["--metrics-port", str(p)] for n, p in metrics.items()}).start()
    conf = client_conf(c, "SASL_PLAINTEXT")
    topic, failed = replicate(conf, n=10)
    assert failed == []
    failures_before = c.log().count("fetching from broker")

    def reauthentications():
        total = 0
        for port in metrics.values():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT_S) as r:
                total += sum(float(line.split()[-1]) for line in r.read().decode().splitlines()
                             if line.startswith("corelog_successful_reauthentication_total"))
        return total

    start = reauthentications()
    p = Producer({**conf, "acks": "all", "enable.idempotence": True})
    sent = 0

    def produce_one():
        nonlocal sent
        p.produce(topic, f"r{sent}".encode(), partition=0,
                  on_delivery=lambda err, msg: err and failed.append(err))
        sent += 1
        assert p.flush(TIMEOUT_S) == 0
        return reauthentications() >= start + 12

    wait_until(produce_one, TIMEOUT_S * 2, "a dozen re-authentications")
    assert failed == []
    assert c.log().count("fetching from broker") == failures_before, c.log()
    assert "expired" not in c.log()


def test_a_password_the_metadata_does_not_hold_is_refused_on_the_listener(make_cluster):
    """The nodes share a credential (their controller ports let each other
    in) whose password is not the SCRAM credential of the metadata log:
    every follower's login to its leader fails, logged by both ends, and
    no secret is logged."""
    c = make_cluster(listener="SASL_PLAINTEXT", extra_args=[
        *SEEDS, "--inter-broker-credential", "broker:SCRAM-SHA-512:not-the-seed", "--authorizer", "on",
        "--super-users", "User:broker"]).start()
    conf = client_conf(c, "SASL_PLAINTEXT")
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    create(conf, NewTopic(topic, 6, 3))
    for n in c.nodes.values():
        wait_until(lambda: "authentication failed" in n.log(), TIMEOUT_S,
                   f"node {n.node_id}'s failed login to a leader")
        wait_until(lambda: "failed authentication" in n.log(), TIMEOUT_S,
                   f"node {n.node_id}'s log of a follower's failed login")
    assert "not-the-seed" not in c.log()
    assert_no_secret_logged(c)


def test_a_node_without_the_cluster_s_credential_cannot_join(make_cluster):
    """Node 3 (a broker, not a controller) has another password: the
    controllers refuse its login on their ports, so it never registers,
    and both ends log why; the others serve on."""
    good = f"broker:SCRAM-SHA-512:{BROKER_SECRET}"
    c = make_cluster(voters=2, listener="SASL_PLAINTEXT", extra_args=[*SEEDS],
                     node_args={1: ["--inter-broker-credential", good], 2: ["--inter-broker-credential", good],
                                3: ["--inter-broker-credential", "broker:SCRAM-SHA-512:wrong-pw"]})
    for n in (1, 2, 3):
        c.nodes[n].spawn()
    for n in (1, 2):
        c.nodes[n].wait_ready()
    wait_until(lambda: "the controller refused: invalid-proof" in c.nodes[3].log(), TIMEOUT_S,
               "node 3's refused login:\n" + c.log())
    wait_until(lambda: "a failed login (invalid-proof)" in c.nodes[1].log() + c.nodes[2].log(), TIMEOUT_S,
               "a controller's log of it")
    assert not c.nodes[3].ready.is_set()
    conf = client_conf(c, "SASL_PLAINTEXT")
    conf["bootstrap.servers"] = c.nodes[1].bootstrap
    brokers = AdminClient(conf).list_topics(timeout=TIMEOUT_S).brokers
    assert sorted(brokers) == [1000, 2000]
    assert "wrong-pw" not in c.log()
    assert_no_secret_logged(c)


def test_the_controller_port_takes_nothing_before_a_login(make_cluster):
    """Frames other than a login, a login frame of junk, a huge length and
    an unknown kind before a login: each connection is closed unserved
    (the 4 KiB bound itself is not visible from here); the cluster goes
    on (an acks=all produce to three replicas)."""
    c = make_cluster(extra_args=[*SEEDS, "--inter-broker-credential", f"broker:PLAIN:{BROKER_SECRET}"]).start()
    port = c.controller_ports[1]
    frames = [
        struct.pack(">IB", 3, 1) + b"xy",                        # a Raft message
        struct.pack(">IB", 3, 2) + b"{}",                         # a request
        struct.pack(">IB", 10, 4) + b"n,,n=x,r=",                 # a malformed login
        struct.pack(">IB", 100 << 20, 4),                          # 100 MiB announced
        struct.pack(">IB", 5, 9) + b"junk",                       # an unknown kind
    ]
    for frame in frames:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
            s.sendall(frame)
            s.settimeout(TIMEOUT_S)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
    _, failed = replicate(client_conf(c, "PLAINTEXT"), n=20)
    assert failed == []


def test_a_broker_principal_without_cluster_action_cannot_replicate(make_cluster):
    """Brokers log in as alice, not a super user and with no ACL: the
    node warns at start, and the leaders refuse its fetches, which the
    follower logs as such."""
    c = make_cluster(listener="SASL_PLAINTEXT", extra_args=[
        *SEEDS, "--inter-broker-credential", "alice:SCRAM-SHA-256:alice-s3cret",
        "--authorizer", "on", "--super-users", "User:broker"]).start()
    assert "brokers log in to each other as User:alice, which is not in --super-users" in c.log()
    conf = client_conf(c, "SASL_PLAINTEXT")
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    create(conf, NewTopic(topic, 1, 3))
    wait_until(lambda: "refuses this node's fetches" in c.log(), TIMEOUT_S, "a refused replica fetch")
    assert_no_secret_logged(c)


def test_a_node_whose_certificate_another_ca_signed_cannot_join(make_cluster, pki):
    """Node 3's certificate is signed by a CA the controllers (nodes 1
    and 2) do not trust: they refuse it as a client certificate on their
    ports, so node 3 never registers, and both ends log why; the two
    others serve on."""
    c = make_cluster(listener="SSL", voters=2, extra_args=["--authorizer", "on",
                                                           "--super-users", "User:CN=broker,O=Corelog"],
                     node_args={1: tls(pki), 2: tls(pki), 3: tls(pki, "rogue-node")})
    for n in (1, 2, 3):
        c.nodes[n].spawn()
    for n in (1, 2):
        c.nodes[n].wait_ready()
    good = lambda: c.nodes[1].log() + c.nodes[2].log()
    wait_until(lambda: "controller: refused the connection from" in good()
               and "TLS handshake: invalid peer certificate" in good(), TIMEOUT_S,
               "a controller refusing node 3's certificate")
    wait_until(lambda: "node 3: logging in to controller" in c.nodes[3].log()
               and "received fatal alert" in c.nodes[3].log(), TIMEOUT_S,
               "node 3 logging the refusal:\n" + c.log())
    assert not c.nodes[3].ready.is_set()
    conf = client_conf(c, "SSL", pki)
    conf["bootstrap.servers"] = ",".join(c.nodes[n].bootstrap for n in (1, 2))
    brokers = sorted(AdminClient(conf).list_topics(timeout=TIMEOUT_S).brokers)
    assert brokers == [1000, 2000]
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    create(conf, NewTopic(topic, 1, 2, config={"min.insync.replicas": "2"}))
    p = Producer({**conf, "acks": "all", "message.timeout.ms": TIMEOUT_S * 1000})
    failed = []
    for i in range(20):
        p.produce(topic, f"v{i}".encode(), on_delivery=lambda err, msg: err and failed.append(err))
    assert p.flush(TIMEOUT_S * 2) == 0 and failed == []


def test_a_leader_certificate_from_another_ca_is_refused_by_followers(make_cluster, pki):
    """Without client certificates (`--ssl-client-auth none`) node 3 joins
    (it trusts the others), but its certificate as a leader's is refused
    by the followers on nodes 1 and 2, which log it."""
    c = make_cluster(listener="SSL", voters=2,
                     node_args={n: tls(pki, "rogue-node" if n == 3 else "node", "--ssl-client-auth", "none")
                                for n in (1, 2, 3)}).start()
    conf = client_conf(c, "SSL", pki)
    conf["bootstrap.servers"] = ",".join(c.nodes[n].bootstrap for n in (1, 2))
    wait_until(lambda: sorted(AdminClient(conf).list_topics(timeout=TIMEOUT_S).brokers) == [1000, 2000, 3000],
               TIMEOUT_S, "node 3 registered")
    topic = f"ib-{uuid.uuid4().hex[:8]}"
    create(conf, NewTopic(topic, 6, 3))
    good = lambda: c.nodes[1].log() + c.nodes[2].log()
    wait_until(lambda: "fetching from broker 3000" in good()
               and "authentication failed: TLS handshake: invalid peer certificate" in good(), TIMEOUT_S,
               "a follower refusing node 3's certificate:\n" + c.log())


@pytest.mark.parametrize("args, message", [
    (["--listener", "SASL_PLAINTEXT://127.0.0.1:19450"], "give --inter-broker-credential"),
    (["--listener", "SASL_PLAINTEXT://127.0.0.1:19450", "--sasl-mechanisms", "SCRAM-SHA-512",
      "--inter-broker-credential", "b:PLAIN:pw"], "uses PLAIN, which --sasl-mechanisms does not serve"),
    (["--listener", "SASL_PLAINTEXT://127.0.0.1:19450", "--inter-broker-credential", "b:GSSAPI:pw"],
     "the mechanism is not PLAIN"),
    (["--listener", "SSL://127.0.0.1:19450", "--ssl-certificate", "{pem}", "--ssl-key", "{key}"],
     "give --ssl-client-ca"),
])
def test_inter_broker_flags_that_cannot_work_are_refused_at_start(tmp_path, pki, args, message):
    args = [a.format(pem=pki.path("node.pem"), key=pki.path("node.key")) for a in args]
    out = subprocess.run([BINARY, "serve", "--data-dir", str(tmp_path / "d"), "--metrics-port", "0",
                          "--controller-quorum", "1@127.0.0.1:19459", "--node-id", "1", *args],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert ":pw" not in out.stderr
