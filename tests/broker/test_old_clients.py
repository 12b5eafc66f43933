"""Clients that never negotiate versions, as Linux distributions still
ship them: librdkafka (and Debian's kcat) told the broker is 0.9.0 or
0.8.2 (`api.version.request=false`; from 0.10 librdkafka asks
ApiVersions whatever it is told) speak Produce v1/v0 with message format
v0 in every codec, Fetch v1/v0, the group and offset APIs of their time;
kafka-python pinned to `api_version=(0, 10, 1)` or `(0, 10, 0)` speaks
Produce v2 with message format v1 and Fetch v3/v2; the raw requests
Sarama 1.22 (DescribeConfigs v0), kafka-go 0.2.1 (CreateTopics v0) and
Burrow 1.2.1 (ListOffsets v0) send are answered in their own layouts.
The log holds record batches v2 only: current clients read what old ones
wrote, and old ones read what current ones wrote (headers dropped,
markers skipped)."""

import socket
import struct
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_fuzz_live import Reader, recv_frame
from test_transactions import TIMEOUT_S, create, leader_of, txn_producer

CODECS = ["none", "gzip", "snappy", "lz4"]


def old(bootstrap, fallback, **extra):
    return {"bootstrap.servers": bootstrap, "api.version.request": False,
            "broker.version.fallback": fallback, "log_level": 3, **extra}


def consume_all(conf, topic, n, start=0):
    """The first `n` records of partition 0 from `start` (offset, key,
    value, timestamp type, timestamp), read with `conf`."""
    c = Consumer({**conf, "group.id": f"g-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, start)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < n and time.monotonic() < deadline:
        for m in c.consume(100, 0.2):
            assert m.error() is None, m.error()
            key = m.key().decode() if m.key() is not None else None
            got.append((m.offset(), key, m.value().decode(), *m.timestamp()))
    c.close()
    assert len(got) == n, f"{len(got)} of {n} records read"
    return got


@pytest.mark.parametrize("fallback", ["0.9.0", "0.8.2"])
def test_old_clients_produce_and_consume_every_codec(broker, fallback):
    topic = f"old-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    expected = []
    for codec in CODECS:
        p = Producer(old(broker.bootstrap, fallback, **{"compression.codec": codec}))
        failed = []
        for i in range(5):
            key = f"k{i}" if i % 2 == 0 else None
            p.produce(topic, key=key, value=f"{codec}-{i}", partition=0,
                      on_delivery=lambda e, _: e is not None and failed.append(e))
            expected.append((key, f"{codec}-{i}"))
        assert p.flush(TIMEOUT_S) == 0 and failed == [], failed
    n = len(expected)

    got = consume_all(old(broker.bootstrap, fallback), topic, n)
    assert [(o, k, v) for o, k, v, _, _ in got] == [(i, k, v) for i, (k, v) in enumerate(expected)]
    # Message format v0 has no timestamps.
    assert all(t == 0 for *_, t, _ in got), got
    # The log holds record batches v2: a modern consumer reads the same.
    modern = consume_all({"bootstrap.servers": broker.bootstrap}, topic, n)
    assert [(o, k, v) for o, k, v, _, _ in modern] == [(o, k, v) for o, k, v, _, _ in got]
    # Debian's kcat (librdkafka 2.0.2) in the same mode.
    out = subprocess.run(
        ["kcat", "-C", "-b", broker.bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e",
         "-q", "-X", "api.version.request=false", "-X", f"broker.version.fallback={fallback}",
         "-f", "%o %s\\n"],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
    assert out.stdout.splitlines() == [f"{i} {v}" for i, (_, v) in enumerate(expected)]

    # Offsets committed and fetched in the versions of their time.
    c = Consumer({**old(broker.bootstrap, fallback), "group.id": f"g-{topic}",
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
    assert c.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)[0].offset == 7
    c.close()


@pytest.mark.parametrize("fallback", ["0.9.0"])
def test_old_group_members_join_consume_and_commit(broker, fallback):
    """JoinGroup, SyncGroup and Heartbeat v0 with OffsetCommit and
    OffsetFetch of their time: a subscribed consumer of librdkafka in the
    0.9.0 mode gets the partitions, reads everything and commits it."""
    topic = f"oldg-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(40):
        p.produce(topic, value=f"v{i}", partition=i % 2)
    assert p.flush(TIMEOUT_S) == 0
    group = f"g-{topic}"
    c = Consumer({**old(broker.bootstrap, fallback), "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < 40 and time.monotonic() < deadline:
        for m in c.consume(100, 0.2):
            assert m.error() is None, m.error()
            got.append(m.value().decode())
    assert sorted(got) == sorted(f"v{i}" for i in range(40))
    c.commit(asynchronous=False)
    committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=TIMEOUT_S)
    assert [tp.offset for tp in committed] == [20, 20]
    c.close()


@pytest.mark.parametrize("api_version", [(0, 10, 1), (0, 10, 0)])
def test_kafka_python_pinned_to_0_10_writes_and_reads_message_format_v1(broker, api_version):
    """Produce v2 with message format v1 (timestamps, plain and gzip'd
    sets) and Fetch v3/v2 back, as kafka-python pinned to 0.10 sends them;
    a current consumer reads the same records."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import TopicPartition as KTP

    topic = f"kp-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    before = int(time.time() * 1000)
    sent = []
    for codec in [None, "gzip"]:
        p = KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=api_version,
                          compression_type=codec, acks=1, linger_ms=50)
        futures = [p.send(topic, key=f"k{i}".encode(), value=f"{codec}-{i}".encode(), partition=0)
                   for i in range(5)]
        p.flush(TIMEOUT_S)
        sent += [(f.get(TIMEOUT_S).offset, f"k{i}", f"{codec}-{i}") for i, f in enumerate(futures)]
        p.close()
    after = int(time.time() * 1000)
    assert [o for o, _, _ in sent] == list(range(10))
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=api_version,
                      consumer_timeout_ms=1000)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < 10 and time.monotonic() < deadline:
        got += [(m.offset, m.key.decode(), m.value.decode(), m.timestamp_type, m.timestamp) for m in c]
    c.close()
    assert [(o, k, v) for o, k, v, _, _ in got] == sent
    # Message format v1's CreateTime timestamps, kept through the batches.
    assert all(t == 0 and before <= ts <= after for *_, t, ts in got), got
    current = consume_all({"bootstrap.servers": broker.bootstrap}, topic, 10)
    assert [(o, k, v) for o, k, v, _, _ in current] == sent


def test_old_consumers_read_what_modern_producers_wrote(broker):
    """zstd batches with headers (neither exists before v2) and a
    transaction's records with its marker: old consumers get every record
    at its offset, uncompressed, headers dropped, the marker skipped."""
    topic = f"new-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd", "linger.ms": 5})
    for i in range(20):
        p.produce(topic, key=f"k{i}", value=f"z{i}", partition=0, headers=[("h", b"v")])
    assert p.flush(TIMEOUT_S) == 0
    t = txn_producer(broker.bootstrap, f"tid-{topic}")
    t.begin_transaction()
    for i in range(5):
        t.produce(topic, value=f"t{i}", partition=0)
    t.commit_transaction(TIMEOUT_S)
    after = Producer({"bootstrap.servers": broker.bootstrap})
    after.produce(topic, value="last", partition=0)
    assert after.flush(TIMEOUT_S) == 0

    modern = consume_all({"bootstrap.servers": broker.bootstrap}, topic, 26)
    assert modern[-1][1:3] == (None, "last") and modern[-1][0] == 26, "the marker took offset 25"
    for fallback in ["0.9.0", "0.8.2"]:
        got = consume_all(old(broker.bootstrap, fallback), topic, 26)
        assert [(o, k, v) for o, k, v, _, _ in got] == [(o, k, v) for o, k, v, _, _ in modern]
    # Message format v1 (Fetch v3), through kafka-python pinned to 0.10.1.
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KTP

    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=(0, 10, 1), consumer_timeout_ms=1000)
    c.assign([KTP(topic, 0)])
    c.seek_to_beginning()
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < 26 and time.monotonic() < deadline:
        got += [(m.offset, m.key.decode() if m.key else None, m.value.decode()) for m in c]
    c.close()
    assert got == [(o, k, v) for o, k, v, _, _ in modern]


def test_an_old_consumer_starts_in_the_middle_of_a_large_batch(broker):
    """A fetch offset inside a compressed batch whose converted messages
    are far larger than the fetch's byte limit: the messages start at the
    offset (the records before it are left out, not sent to fill the
    limit), so the consumer progresses."""
    topic = f"mid-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd",
                  "linger.ms": 1000, "batch.num.messages": 1000})
    for i in range(200):
        p.produce(topic, value=f"{i:04}" + "x" * 300, partition=0)
    assert p.flush(TIMEOUT_S) == 0
    conf = old(broker.bootstrap, "0.9.0", **{"fetch.message.max.bytes": 4000})
    got = consume_all(conf, topic, 50, start=150)
    assert [(o, v[:4]) for o, _, v, _, _ in got] == [(i, f"{i:04}") for i in range(150, 200)]
    # librdkafka grows its fetch size past records it skips; a client that
    # does not would wait forever. Fetch v2 as such a client sends it.
    body = (struct.pack(">iiii", -1, 0, 0, 1) + s16(topic)
            + struct.pack(">iiqi", 1, 0, 150, 4000))
    r = raw(broker, 1, 2, body, shard=leader_of(broker.bootstrap, topic, 0))
    assert r.fixed("i") == 0 and r.fixed("i") == 1 and r.string() == topic and r.fixed("i") == 1
    assert (r.fixed("i"), r.fixed("h"), r.fixed("q")) == (0, 0, 200)
    size = r.fixed("i")
    assert 0 < size <= 4000
    offsets = []
    while r.pos < len(r.data):
        offset, length = r.fixed("q"), r.fixed("i")
        message = r.take(length)
        assert message[4] == 1  # magic 1
        offsets.append(offset)
    assert offsets == list(range(150, 150 + len(offsets))), offsets


# Raw requests in the layouts the old tools send, read back by hand.

def raw(broker, api, version, body, shard=0):
    header = struct.pack(">hhih", api, version, 9, 3) + b"old"
    frame = header + body
    with socket.create_connection(("127.0.0.1", broker.port + shard), timeout=TIMEOUT_S) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        reply = recv_frame(s)
    assert struct.unpack(">i", reply[:4])[0] == 9
    return Reader(reply[4:])


def s16(v):
    return struct.pack(">h", len(v)) + v.encode()


def test_burrow_list_offsets_v0_sarama_describe_configs_v0_kafka_go_create_topics_v0(broker):
    topic = f"raw-{uuid.uuid4().hex[:8]}"
    # kafka-go 0.2.1: CreateTopics v0 (no validate_only), answered
    # [name, error] per topic.
    body = (struct.pack(">i", 1) + s16(topic) + struct.pack(">ihii", 1, 1, 0, 1)
            + s16("retention.ms") + s16("3600000") + struct.pack(">i", 5000))
    r = raw(broker, 19, 0, body)
    assert r.fixed("i") == 1 and r.string() == topic and r.fixed("h") == 0
    assert r.pos == len(r.data)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(3):
        p.produce(topic, value=f"v{i}", partition=0)
    assert p.flush(TIMEOUT_S) == 0

    # Burrow 1.2.1: ListOffsets v0 to the partition's leader, the latest
    # and the earliest offset, each as a list of (here) one.
    leader = leader_of(broker.bootstrap, topic, 0)
    for timestamp, want in [(-1, 3), (-2, 0)]:
        body = (struct.pack(">ii", -1, 1) + s16(topic)
                + struct.pack(">iiqi", 1, 0, timestamp, 1))
        r = raw(broker, 2, 0, body, shard=leader)
        assert r.fixed("i") == 1 and r.string() == topic and r.fixed("i") == 1
        assert (r.fixed("i"), r.fixed("h"), r.fixed("i"), r.fixed("q")) == (0, 0, 1, want)
        assert r.pos == len(r.data)

    # Sarama 1.22: DescribeConfigs v0 (ClusterAdmin.ListTopics), each
    # config with is_default instead of its source.
    body = struct.pack(">ib", 1, 2) + s16(topic) + struct.pack(">i", -1)
    r = raw(broker, 32, 0, body)
    assert r.fixed("i") == 0 and r.fixed("i") == 1
    assert r.fixed("h") == 0
    r.string()
    assert r.fixed("b") == 2 and r.string() == topic
    configs = {}
    for _ in range(r.fixed("i")):
        name, value = r.string(), r.string()
        read_only, is_default, sensitive = r.fixed("b"), r.fixed("b"), r.fixed("b")
        configs[name] = (value, is_default)
    assert r.pos == len(r.data)
    assert configs["retention.ms"] == ("3600000", 0)
    assert configs["cleanup.policy"] == ("delete", 1)


def test_an_old_compressed_set_within_the_limit_is_taken_whatever_its_size_uncompressed(broker):
    """Kafka limits each old message (a compressed set is one) by
    max.message.bytes; the set is stored uncompressed here, over as many
    batches as keep each within the limit, so it is never refused for
    the size its messages take uncompressed."""
    topic = f"oldz-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "10000"})])[topic].result(TIMEOUT_S)
    p = Producer(old(broker.bootstrap, "0.9.0", **{"compression.codec": "gzip", "linger.ms": 200,
                                                    "batch.num.messages": 1000}))
    failed = []
    for i in range(100):
        p.produce(topic, value=f"{i:03}" + "x" * 1000, partition=0,
                  on_delivery=lambda e, _: e is not None and failed.append(e))
    assert p.flush(TIMEOUT_S) == 0 and failed == [], failed
    got = consume_all({"bootstrap.servers": broker.bootstrap}, topic, 100)
    assert [(o, v[:3]) for o, _, v, _, _ in got] == [(i, f"{i:03}") for i in range(100)]
