"""Bad input on the wire: each case closes (or answers) that connection
with a log line, the broker keeps serving everyone else, and nothing
acknowledged is lost."""

import socket
import struct
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from conftest import wait_until

TIMEOUT_S = 30


def connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S)
    return s


def closed_by_broker(s):
    """True when the broker closed the connection (EOF or reset)."""
    try:
        return s.recv(65536) == b""
    except ConnectionResetError:
        return True


def request(api_key, version, correlation_id, body=b"", client_id=b"test"):
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    if version >= 3 and api_key == 18:  # flexible ApiVersions: header tagged fields
        header += b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_frame(s):
    size = b""
    while len(size) < 4:
        chunk = s.recv(4 - len(size))
        assert chunk, "connection closed"
        size += chunk
    (n,) = struct.unpack(">i", size)
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def still_serving(broker):
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    return len(md.brokers) == 2


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xde\xad\xbe\xef" * 64, id="garbage"),
        pytest.param(struct.pack(">i", 200 * 1024 * 1024) + b"x" * 100, id="frame-over-100MiB"),
        pytest.param(struct.pack(">i", -7), id="negative-size"),
        pytest.param(request(9999, 0, 1), id="unknown-api-key"),
        pytest.param(request(1, 99, 1), id="unknown-fetch-version"),
        pytest.param(request(3, 1, 1, body=b"\x00\x00\x00\x05\x00"), id="undecodable-metadata-body"),
        pytest.param(request(17, 0, 1), id="sasl-handshake-without-a-body"),
        # An old version, rewritten before decoding (decision 46): a body
        # that does not parse is refused all the same.
        pytest.param(request(0, 2, 1, body=b"\x00\x01"), id="undecodable-produce-v2-body"),
        pytest.param(request(2, 0, 1, body=b"\xff\xff\xff\xff\x7f\xff\xff\xff"), id="list-offsets-v0-lying-count"),
    ],
)
def test_bad_frames_close_only_their_connection(broker, payload):
    bystander = connect(broker)
    s = connect(broker)
    s.sendall(payload)
    assert closed_by_broker(s)
    s.close()
    # A connection opened before is unaffected: ApiVersions v0 still answers.
    bystander.sendall(request(18, 0, 7))
    frame = recv_frame(bystander)
    assert struct.unpack(">i", frame[:4])[0] == 7
    bystander.close()
    assert still_serving(broker)
    assert "closing connection" in broker.log()


def test_truncated_frame_then_disconnect(broker):
    s = connect(broker)
    s.sendall(struct.pack(">i", 100) + b"only a part")
    s.close()
    assert still_serving(broker)


def test_newer_api_versions_gets_the_kip511_fallback(broker):
    s = connect(broker)
    s.sendall(request(18, 9, 5))
    frame = recv_frame(s)
    correlation_id, error_code = struct.unpack(">ih", frame[:6])
    assert (correlation_id, error_code) == (5, 35)  # UNSUPPORTED_VERSION, in v0
    (count,) = struct.unpack(">i", frame[6:10])
    ranges = {}
    for i in range(count):
        key, low, high = struct.unpack(">hhh", frame[10 + 6 * i: 16 + 6 * i])
        ranges[key] = (low, high)
    assert {0, 1, 2, 3, 18, 19} <= set(ranges)
    assert ranges[0] == (0, 9), "Produce reported from v0 (served from v3)"
    s.close()


def test_acknowledged_data_is_intact_after_bad_input(broker):
    topic = f"intact-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(100):
        p.produce(topic, value=f"v{i}".encode())
    assert p.flush(TIMEOUT_S) == 0
    s = connect(broker)
    s.sendall(b"\xff" * 1000)
    assert closed_by_broker(s)
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = []
    import time
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < 100 and time.monotonic() < deadline:
        got += [m.value() for m in c.consume(100, 0.5) if m.error() is None]
    c.close()
    assert got == [f"v{i}".encode() for i in range(100)]


def fetch_v4(correlation_id, topic, partition, offset, max_wait_ms, min_bytes):
    t = topic.encode()
    body = struct.pack(">iiiib", -1, max_wait_ms, min_bytes, 1 << 20, 0)
    body += struct.pack(">ih", 1, len(t)) + t
    body += struct.pack(">iiqi", 1, partition, offset, 1 << 20)
    return request(1, 4, correlation_id, body)


def test_stop_answers_long_polls_at_once(broker):
    """SIGTERM during a 30 s long poll: the fetch is answered and the node
    stops well inside the poll's wait (it waited for the deadline before)."""
    topic = f"poll-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic, b"one", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(topic, timeout=TIMEOUT_S)
    leader = md.topics[topic].partitions[0].leader
    s = socket.create_connection(("127.0.0.1", broker.port + leader), timeout=TIMEOUT_S)
    s.sendall(fetch_v4(9, topic, 0, 1, max_wait_ms=30_000, min_bytes=1 << 20))
    # The request is in its long poll once the broker has decoded it: a
    # second request on another connection proves the shard is serving.
    assert still_serving(broker)
    s.settimeout(15)  # half the poll's wait: an answer at the deadline fails
    broker.proc.send_signal(15)
    reply = recv_frame(s)
    assert struct.unpack(">i", reply[:4])[0] == 9
    assert broker.proc.wait(15) == 0, broker.log()
    broker.proc = None
    assert "stopped cleanly" in broker.log()


def test_one_address_gets_at_most_1000_connections_per_shard(broker):
    """max.connections.per.ip: the 1,001st connection from one address to a
    shard is closed at once; the ones before it are served, and once they
    close the address is served again."""
    conns = [socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S) for _ in range(1000)]
    try:
        # The last of them is served (so all 1,000 were taken by the shard).
        conns[-1].sendall(request(18, 0, 7))
        assert struct.unpack(">i", recv_frame(conns[-1])[:4])[0] == 7
        extra = connect(broker)
        assert closed_by_broker(extra)
        extra.close()
    finally:
        for s in conns:
            s.close()

    def served():
        try:
            s = connect(broker)
            s.sendall(request(18, 0, 8))
            ok = struct.unpack(">i", recv_frame(s)[:4])[0] == 8
            s.close()
            return ok
        except (AssertionError, OSError):
            return False
    wait_until(served, TIMEOUT_S, "a new connection served after the others closed")
    assert "refusing a connection" in broker.log()
