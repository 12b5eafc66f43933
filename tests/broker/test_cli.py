"""The admin CLI (`corelog topic|group|cluster|produce|consume`) end to end
against a real broker, cross-checked with real clients: confluent-kafka
(librdkafka) and kcat read what `corelog produce` wrote (keys, headers,
murmur2 placement) and write what `corelog consume` reads (every codec);
group lag, resets and commits agree with a librdkafka consumer.

Every command runs as a subprocess with a timeout; every wait is bounded
(`wait_until`); nothing sleeps to synchronise and nothing asserts timing."""

import datetime
import json
import socket
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import BINARY, wait_until

TIMEOUT_S = 60


def run(args, bootstrap=None, input=None):
    cmd = [BINARY] + list(args)
    if bootstrap is not None:
        cmd += ["--bootstrap", bootstrap]
    return subprocess.run(cmd, input=input, capture_output=True, timeout=TIMEOUT_S)


def ok(args, bootstrap=None, input=None):
    """Runs a command that must succeed; returns its stdout as text."""
    out = run(args, bootstrap, input)
    assert out.returncode == 0, (args, out.stderr.decode())
    return out.stdout.decode()


def fails(args, bootstrap=None, input=None, code=1):
    """Runs a command that must fail with `code` and exactly one line on
    stderr, `corelog: ...`; returns that line."""
    out = run(args, bootstrap, input)
    err = out.stderr.decode()
    assert out.returncode == code, (args, out.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("corelog: "), (args, err)
    return lines[0]


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(TIMEOUT_S)


def read_all(bootstrap, topic, partitions, count):
    """`count` records of `topic` read by librdkafka from the beginning."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": name("reader"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []

    def poll():
        m = c.poll(0.2)
        if m is not None:
            assert m.error() is None, m.error()
            got.append(m)
        return len(got) >= count

    try:
        wait_until(poll, TIMEOUT_S, f"{count} records of {topic}")
    finally:
        c.close()
    return got


def table(text):
    """The first table of a `group describe`/`reset-offsets` output as dicts."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("GROUP "))
    header = lines[start].split()
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows.append(dict(zip(header, line.split())))
    return rows


def describe_group(bootstrap, group):
    out = ok(["group", "describe", group], bootstrap)
    return out.splitlines()[0], table(out)


def json_lines(text):
    return [json.loads(l) for l in text.splitlines()]


# ---------------------------------------------------------------- flags ---


COMMANDS = [
    ["topic"], ["topic", "create"], ["topic", "list"], ["topic", "describe"], ["topic", "delete"],
    ["topic", "alter-config"], ["topic", "delete-records"], ["group"], ["group", "list"], ["group", "describe"], ["group", "delete"],
    ["group", "reset-offsets"], ["cluster"], ["cluster", "describe"], ["produce"], ["consume"],
    ["user"], ["user", "list"], ["user", "add"], ["user", "remove"],
    ["acl"], ["acl", "add"], ["acl", "list"], ["acl", "remove"],
    ["quota"], ["quota", "list"], ["quota", "set"], ["quota", "remove"],
]


def test_help_on_every_command_and_subcommand():
    top = ok(["--help"])
    for c in ["topic", "group", "cluster", "user", "acl", "quota", "produce", "consume"]:
        assert f"  {c} " in top, top
    for cmd in COMMANDS:
        out = ok(cmd + ["--help"])
        assert out.startswith("usage: corelog " + cmd[0]), (cmd, out)


@pytest.mark.parametrize("args", [
    ["topic", "create", "t", "--no-such-flag"],
    ["topic", "create", "t", "--partitions"],
    ["topic", "create", "t", "--partitions", "many"],
    ["topic", "create", "t", "--partitions", "0"],
    ["topic", "create"],
    ["topic", "frobnicate"],
    ["topic"],
    ["topic", "alter-config", "t"],
    ["topic", "delete-records", "t"],
    ["topic", "delete-records", "t", "--offset", "0=-2"],
    ["topic", "delete-records", "t", "--offset", "x=5"],
    ["topic", "delete-records", "t", "--offset", "0=1", "--timeout-ms", "90000"],
    ["group", "reset-offsets", "g", "--topic", "t"],
    ["group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-latest"],
    ["group", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"],
    ["group", "describe"],
    ["produce", "t", "--acks", "2"],
    ["produce", "t", "--config=x"],
    ["consume", "t", "--offset", "5"],
    ["consume", "t", "--format", "xml"],
    ["consume", "t", "--group", "g", "--partition", "0"],
    ["cluster", "describe", "extra"],
    ["user", "add"],
    ["user", "add", "u", "--mechanism", "MD5"],
    ["user", "add", "u", "--iterations", "100"],
    ["user", "remove"],
    ["user", "frobnicate"],
    ["acl", "add", "--topic", "t", "--operation", "Read"],
    ["acl", "add", "--allow-principal", "User:a", "--operation", "Read"],
    ["acl", "add", "--topic", "t", "--allow-principal", "User:a"],
    ["acl", "add", "--topic", "t", "--allow-principal", "alice", "--operation", "Read"],
    ["acl", "add", "--topic", "t", "--group", "g", "--allow-principal", "User:a", "--operation", "Read"],
    ["acl", "add", "--cluster", "--allow-principal", "User:a", "--operation", "Fly"],
    ["acl", "add", "--topic", "t", "--resource-pattern-type", "match", "--allow-principal", "User:a",
     "--operation", "Read"],
    ["acl", "remove", "--operation", "Read"],
    ["quota", "set", "--producer-byte-rate", "1000"],
    ["quota", "set", "--user", "a"],
    ["quota", "set", "--user", "a", "--user-default", "--producer-byte-rate", "1000"],
    ["quota", "set", "--client-id", "c", "--producer-byte-rate", "fast"],
    ["quota", "remove"],
    ["frobnicate"],
])
def test_usage_errors_exit_2_with_one_line(args):
    # No broker is needed: flags are checked before any connection.
    fails(args, bootstrap="127.0.0.1:1", code=2)


def test_a_bootstrap_that_refuses_connections():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    for args in (["topic", "list"], ["cluster", "describe"], ["group", "list"], ["consume", "t"]):
        line = fails(args, bootstrap=f"127.0.0.1:{port}")
        assert f"connecting to 127.0.0.1:{port}" in line and "refused" in line.lower(), line
    line = fails(["produce", "t"], bootstrap=f"127.0.0.1:{port}", input=b"x\n")
    assert "refused" in line.lower(), line


# --------------------------------------------------------------- topics ---


def test_topic_create_list_describe_delete(broker):
    b = broker.bootstrap
    topic = name("cli")
    assert ok(["topic", "create", topic, "--partitions", "3", "--config", "retention.ms=3600000",
               "--config", "cleanup.policy=compact"], b) == f"Created topic {topic}.\n"
    md = AdminClient({"bootstrap.servers": b}).list_topics(timeout=TIMEOUT_S)
    assert len(md.topics[topic].partitions) == 3
    assert topic in ok(["topic", "list"], b).splitlines()

    # Errors carry Kafka's name and the broker's message.
    line = fails(["topic", "create", topic, "--partitions", "1"], b)
    assert "TOPIC_ALREADY_EXISTS" in line and topic in line, line
    assert ok(["topic", "create", topic, "--partitions", "1", "--if-not-exists"], b) == ""
    assert "INVALID_CONFIG" in fails(["topic", "create", name("bad"), "--config", "retention.ms=soon"], b)
    assert "INVALID_CONFIG" in fails(["topic", "create", name("bad"), "--config", "no.such.config=1"], b)
    assert "INVALID_REPLICATION_FACTOR" in fails(["topic", "create", name("bad"), "--replication-factor", "3"], b)

    out = ok(["topic", "describe", topic], b).splitlines()
    head = dict(f.split(": ", 1) for f in out[0].split("\t"))
    assert head["Topic"] == topic and head["PartitionCount"] == "3" and head["ReplicationFactor"] == "1"
    assert len(head["TopicId"]) == 22 and head["TopicId"] != "A" * 22, head
    assert sorted(head["Configs"].split(",")) == ["cleanup.policy=compact", "retention.ms=3600000"]
    leaders = {}
    for line in out[1:]:
        f = dict(x.split(": ", 1) for x in line.strip().split("\t"))
        leaders[int(f["Partition"])] = int(f["Leader"])
    assert leaders == {p: m.leader for p, m in md.topics[topic].partitions.items()}
    # Without names: every topic but the internal ones.
    all_out = ok(["topic", "describe"], b)
    assert f"Topic: {topic}\t" in all_out and "__consumer_offsets" not in all_out
    assert "UNKNOWN_TOPIC_OR_PARTITION" in fails(["topic", "describe", name("none")], b)

    other = name("other")
    ok(["topic", "create", other], b)
    assert ok(["topic", "delete", topic, other], b) == ""
    wait_until(lambda: topic not in ok(["topic", "list"], b).splitlines(), TIMEOUT_S, "the topic gone")
    line = fails(["topic", "delete", topic], b)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in line and topic in line, line


def test_topic_list_internal(broker):
    b = broker.bootstrap
    # A group commit makes sure the offsets topic exists, on any broker.
    topic = name("int")
    create(b, topic, 1)
    ok(["consume", topic, "--group", name("g"), "--timeout-ms", "100"], b)
    assert "__consumer_offsets" not in ok(["topic", "list"], b).splitlines()
    assert "__consumer_offsets" in ok(["topic", "list", "--internal"], b).splitlines()


def test_topic_alter_config(broker):
    b = broker.bootstrap
    topic = name("alter")
    ok(["topic", "create", topic, "--partitions", "1", "--config", "retention.ms=3600000"], b)
    assert ok(["topic", "alter-config", topic, "--set", "segment.bytes=1048576", "--set", "retention.ms=7200000"],
              b) == f"Completed updating config for topic {topic}.\n"
    admin = AdminClient({"bootstrap.servers": b})

    def configs():
        r = ConfigResource("topic", topic)
        return {k: v.value for k, v in admin.describe_configs([r])[r].result(TIMEOUT_S).items()}

    assert configs()["retention.ms"] == "7200000" and configs()["segment.bytes"] == "1048576"
    ok(["topic", "alter-config", topic, "--delete", "retention.ms"], b)
    assert configs()["retention.ms"] == "604800000", "back to the default"
    described = ok(["topic", "describe", topic], b).splitlines()[0]
    assert "Configs: segment.bytes=1048576" in described, described
    assert "INVALID_CONFIG" in fails(["topic", "alter-config", topic, "--set", "retention.ms=soon"], b)
    assert "INVALID_CONFIG" in fails(["topic", "alter-config", topic, "--set", "no.such.config=1"], b)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in fails(["topic", "alter-config", name("none"), "--set", "retention.ms=1"], b)


def test_topic_delete_records(broker):
    b = broker.bootstrap
    topic = name("dr")
    ok(["topic", "create", topic, "--partitions", "2"], b)
    ok(["produce", topic, "--partition", "0"], b, input=b"".join(b"r%d\n" % i for i in range(10)))
    out = ok(["topic", "delete-records", topic, "--offset", "0=4", "--offset", "1=-1"], b)
    assert out == ("Records delete operation completed:\n"
                   f"partition: {topic}-0\tlow_watermark: 4\npartition: {topic}-1\tlow_watermark: 0\n"), out
    c = Consumer({"bootstrap.servers": b, "group.id": name("g")})
    assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S) == (4, 10)
    c.close()
    assert "OFFSET_OUT_OF_RANGE" in fails(["topic", "delete-records", topic, "--offset", "0=11"], b)


def test_cluster_describe(broker):
    b = broker.bootstrap
    out = ok(["cluster", "describe"], b).splitlines()
    md = AdminClient({"bootstrap.servers": b}).list_topics(timeout=TIMEOUT_S)
    assert out[0] == f"Cluster id: {md.cluster_id}"
    assert out[1] == f"Controller: {md.controller_id}"
    assert out[2].split() == ["NODE", "BROKERS"]
    assert out[3].split() == ["0", "0,1"]
    assert out[4].split() == ["BROKER", "HOST:PORT", "RACK"]
    rows = [l.split() for l in out[5:7]]
    assert [r[:2] for r in rows] == [[str(i), f"127.0.0.1:{broker.port + i}"] for i in range(2)]
    assert all(len(r) == 3 for r in rows), "each broker has a rack"
    # A single node is its metadata quorum's only voter, and its leader.
    assert out[7].startswith("Quorum: leader node 0, epoch 1, high watermark "), out[7]
    high_watermark = int(out[7].rsplit(" ", 1)[1])
    assert high_watermark > 0
    assert out[8].split() == ["VOTER", "LOG", "END", "LAG"]
    assert out[9].split() == ["0", "(leader)", str(high_watermark), "0"]
    assert len(out) == 10


# -------------------------------------------------------------- produce ---


def test_produced_keys_and_headers_land_where_java_clients_put_them(broker):
    b = broker.bootstrap
    topic, mirror = name("keyed"), name("mirror")
    create(b, topic, 6)
    create(b, mirror, 6)
    keys = [f"key-{i}" for i in range(200)] + ["21", "foobar", "abc", ""]
    lines = "".join(f"{k}:value-{i}\n" for i, k in enumerate(keys))
    assert ok(["produce", topic, "--key-separator", ":", "--header", "h1=v1", "--header", "h2=",
               "--batch-records", "7"], b, input=lines.encode()) == ""
    got = read_all(b, topic, 6, len(keys))
    # librdkafka's murmur2_random is Java's default partitioner for keys.
    p = Producer({"bootstrap.servers": b, "partitioner": "murmur2_random"})
    for k in keys:
        p.produce(mirror, key=k.encode(), value=b"x")
    assert p.flush(TIMEOUT_S) == 0
    placed = {m.key().decode(): m.partition() for m in read_all(b, mirror, 6, len(keys))}
    assert {m.key().decode(): m.partition() for m in got} == placed
    assert len(set(placed.values())) == 6
    by_key = {m.key().decode(): m for m in got}
    for i, k in enumerate(keys):
        assert by_key[k].value() == f"value-{i}".encode()
        assert by_key[k].headers() == [("h1", b"v1"), ("h2", b"")]
    # Within a partition, lines keep their order.
    for part in range(6):
        values = [int(m.value().split(b"-")[1]) for m in got if m.partition() == part]
        assert values == sorted(values)


def test_unkeyed_lines_go_round_robin_per_batch(broker):
    b = broker.bootstrap
    topic = name("rr")
    create(b, topic, 4)
    lines = "".join(f"line {i}\r\n" for i in range(100))
    ok(["produce", topic, "--batch-records", "10"], b, input=lines.encode())
    got = read_all(b, topic, 4, 100)
    counts = {p: sum(1 for m in got if m.partition() == p) for p in range(4)}
    assert counts == {0: 30, 1: 30, 2: 20, 3: 20}, counts
    assert sorted(m.value() for m in got) == sorted(f"line {i}".encode() for i in range(100)), "\\r\\n stripped"
    assert all(m.key() is None for m in got)
    # --partition sends everything there; kcat reads it back.
    ok(["produce", topic, "--partition", "2", "--acks", "1", "--verbose"], b, input=b"a\nb\nc")
    out = subprocess.run(["kcat", "-b", b, "-C", "-t", topic, "-p", "2", "-o", "-3", "-e", "-f", "%s\n"],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.stdout.splitlines() == ["a", "b", "c"], out.stderr


def test_produce_with_acks_0(broker):
    b = broker.bootstrap
    topic = name("acks0")
    create(b, topic, 1)
    ok(["produce", topic, "--acks", "0"], b, input=b"fire\nforget\n")
    got = read_all(b, topic, 1, 2)
    assert [m.value() for m in got] == [b"fire", b"forget"]


def test_produce_errors(broker):
    b = broker.bootstrap
    topic = name("perr")
    create(b, topic, 2)
    line = fails(["produce", topic, "--key-separator", ":"], b, input=b"a:1\nb:2\nno separator\nc:3\n")
    assert "line 3" in line and '":"' in line, line
    # The lines before the bad one were sent, as Kafka's console producer does.
    got = read_all(b, topic, 2, 2)
    assert sorted(m.key() for m in got) == [b"a", b"b"]
    assert "UNKNOWN_TOPIC_OR_PARTITION" in fails(["produce", name("none")], b, input=b"x\n")
    assert "no partition 5" in fails(["produce", topic, "--partition", "5"], b, input=b"x\n")
    # A record larger than the topic's max.message.bytes: the broker's refusal.
    small = name("small")
    ok(["topic", "create", small, "--config", "max.message.bytes=1000"], b)
    assert "MESSAGE_TOO_LARGE" in fails(["produce", small], b, input=b"x" * 5000 + b"\n")


# -------------------------------------------------------------- consume ---


CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_consume_reads_what_librdkafka_produces(broker, codec):
    b = broker.bootstrap
    topic = name(f"c-{codec}")
    create(b, topic, 3)
    p = Producer({"bootstrap.servers": b, "compression.type": codec, "linger.ms": 20})
    sent = []
    for i in range(60):
        key = None if i % 10 == 0 else f"k{i}".encode()
        value = None if i == 7 else f"value {i} ".encode() * 5
        headers = [("n", str(i).encode()), ("empty", None)] if i % 2 else None
        p.produce(topic, key=key, value=value, headers=headers, partition=i % 3, timestamp=1_700_000_000_000 + i)
        sent.append((i % 3, key, value, headers))
    assert p.flush(TIMEOUT_S) == 0
    out = ok(["consume", topic, "--from-beginning", "--max-messages", "60", "--format", "json",
              "--timeout-ms", "20000"], b)
    got = json_lines(out)
    assert len(got) == 60
    by_partition = {}
    for r in got:
        assert r["topic"] == topic and list(r)[:4] == ["topic", "partition", "offset", "timestamp"]
        by_partition.setdefault(r["partition"], []).append(r)
    for part, records in by_partition.items():
        assert [r["offset"] for r in records] == list(range(20)), "offset order per partition"
        expected = [s for s in sent if s[0] == part]
        for r, (_, key, value, headers) in zip(records, expected):
            assert r["key"] == (key.decode() if key is not None else None)
            assert r["value"] == (value.decode() if value is not None else None)
            assert r["headers"] == ([[k, v.decode() if v is not None else None] for k, v in headers]
                                    if headers else [])
            assert r["timestamp"] >= 1_700_000_000_000


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_consume_reads_what_kcat_produces(broker, codec):
    b = broker.bootstrap
    topic = name(f"k-{codec}")
    create(b, topic, 1)
    lines = "".join(f"key{i}={codec} line {i}\n" for i in range(200))
    p = subprocess.run(["kcat", "-b", b, "-P", "-t", topic, "-p", "0", "-z", codec, "-K", "="],
                       input=lines, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    out = ok(["consume", topic, "--offset", "earliest", "--max-messages", "200", "--print-key",
              "--key-separator", "=", "--timeout-ms", "20000"], b)
    assert out == lines


def test_consume_positions_limits_and_binary_values(broker):
    b = broker.bootstrap
    topic = name("pos")
    create(b, topic, 2)
    p = Producer({"bootstrap.servers": b})
    for i in range(10):
        p.produce(topic, value=f"v{i}".encode(), partition=1)
    p.produce(topic, key=b"\xff\x00", value=b"\x80binary", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    assert ok(["consume", topic, "--partition", "1", "--offset", "7", "--timeout-ms", "3000"], b) == "v7\nv8\nv9\n"
    assert ok(["consume", topic, "--partition", "1", "--offset", "earliest", "--max-messages", "3"], b) == "v0\nv1\nv2\n"
    # The default start is the latest offset: nothing old is printed.
    assert ok(["consume", topic, "--timeout-ms", "500"], b) == ""
    assert ok(["consume", topic, "--offset", "latest", "--timeout-ms", "500"], b) == ""
    # Beyond the end: reset to latest (nothing), as auto.offset.reset does.
    assert ok(["consume", topic, "--partition", "1", "--offset", "99", "--timeout-ms", "1000"], b) == ""
    [r] = json_lines(ok(["consume", topic, "--partition", "0", "--from-beginning", "--format", "json",
                          "--max-messages", "1"], b))
    assert r["key"] is None and r["key_b64"] == "/wA="
    assert r["value"] is None and r["value_b64"] == "gGJpbmFyeQ=="
    assert "no partition 4" in fails(["consume", topic, "--partition", "4"], b)
    assert "UNKNOWN_TOPIC_OR_PARTITION" in fails(["consume", name("none"), "--timeout-ms", "100"], b)


def test_consume_stops_when_its_reader_goes(broker):
    """`corelog consume | head -1`: a closed stdout ends the command quietly."""
    b = broker.bootstrap
    topic = name("pipe")
    create(b, topic, 1)
    ok(["produce", topic], b, input="".join(f"{i}\n" for i in range(5000)).encode())
    proc = subprocess.Popen([BINARY, "consume", topic, "--from-beginning", "--bootstrap", b],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"0\n"
    proc.stdout.close()
    # Whatever it still writes now fails with EPIPE.
    ok(["produce", topic], b, input=b"more\n")
    assert proc.wait(TIMEOUT_S) == 0
    assert proc.stderr.read() == b""


# --------------------------------------------------------------- groups ---


def test_group_consume_commits_resumes_and_leaves(broker):
    b = broker.bootstrap
    topic, group = name("gc"), name("g")
    create(b, topic, 3)
    ok(["produce", topic, "--key-separator", ":"], b, input="".join(f"k{i}:v{i}\n" for i in range(30)).encode())
    first = ok(["consume", topic, "--group", group, "--from-beginning", "--max-messages", "12"], b).split()
    assert len(first) == 12
    summary, rows = describe_group(b, group)
    assert summary.startswith(f"Group {group}: state Empty"), "the member left at exit"
    # Rows for the partitions with a committed offset (no member is left).
    assert sum(int(r["CURRENT-OFFSET"]) for r in rows) == 12
    for r in rows:
        assert int(r["LAG"]) == int(r["LOG-END-OFFSET"]) - int(r["CURRENT-OFFSET"])
        assert r["CONSUMER-ID"] == "-"
    # librdkafka sees the same committed offsets.
    c = Consumer({"bootstrap.servers": b, "group.id": group})
    committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=TIMEOUT_S)
    c.close()
    assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == {
        int(r["PARTITION"]): int(r["CURRENT-OFFSET"]) for r in rows}
    # The next member resumes where the first stopped: no record twice.
    # (--from-beginning: partitions without a committed offset start at 0.)
    rest = ok(["consume", topic, "--group", group, "--from-beginning", "--max-messages", "18",
               "--timeout-ms", "20000"], b).split()
    assert sorted(first + rest) == sorted(f"v{i}" for i in range(30))
    _, rows = describe_group(b, group)
    assert len(rows) == 3 and all(r["LAG"] == "0" for r in rows), rows
    # Nothing new: --timeout-ms ends it with status 0.
    assert ok(["consume", topic, "--group", group, "--timeout-ms", "1000"], b) == ""
    assert group in ok(["group", "list"], b).splitlines()


def test_group_describe_lag_matches_a_librdkafka_consumer(broker):
    b = broker.bootstrap
    topic, group = name("lag"), name("g")
    create(b, topic, 3)
    p = Producer({"bootstrap.servers": b})
    for i in range(60):
        p.produce(topic, value=str(i).encode(), partition=i % 3)
    assert p.flush(TIMEOUT_S) == 0
    c = Consumer({"bootstrap.servers": b, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "client.id": "lag-checker",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    seen = []

    def consume():
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            seen.append(m)
        return len(seen) >= 25

    try:
        wait_until(consume, TIMEOUT_S, "25 records")
        c.commit(asynchronous=False)
        committed = {tp.partition: tp.offset for tp in c.committed(
            [TopicPartition(topic, q) for q in range(3)], timeout=TIMEOUT_S)}
        summary, rows = describe_group(b, group)
        assert summary == f"Group {group}: state Stable, protocol consumer/range, 1 member", summary
        assert len(rows) == 3
        for r in rows:
            part = int(r["PARTITION"])
            current = committed[part]
            assert r["CURRENT-OFFSET"] == (str(current) if current >= 0 else "-")
            assert r["LOG-END-OFFSET"] == "20"
            assert r["LAG"] == (str(20 - current) if current >= 0 else "-")
            assert r["CONSUMER-ID"] == c.memberid() and r["CLIENT-ID"] == "lag-checker"
        assert sum(20 - max(o, 0) for o in committed.values()) == 60 - len(seen)
        # An active group's offsets are not reset, and not deleted.
        line = fails(["group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute"], b)
        assert "active members" in line and "Stable" in line, line
        assert "NON_EMPTY_GROUP" in fails(["group", "delete", group], b)
    finally:
        c.close()
    wait_until(lambda: describe_group(b, group)[0].startswith(f"Group {group}: state Empty"), TIMEOUT_S,
               "the group empty after close")


def test_reset_offsets_plans_then_executes(broker):
    b = broker.bootstrap
    topic, group = name("reset"), name("g")
    create(b, topic, 2)
    # Whole seconds an hour ago (recent: retention must not touch them).
    base = (int(time.time()) - 3600) * 1000
    at = datetime.datetime.fromtimestamp(base / 1000 + 5, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    p = Producer({"bootstrap.servers": b})
    for i in range(20):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 2, timestamp=base + i * 1000)
    assert p.flush(TIMEOUT_S) == 0
    assert len(ok(["consume", topic, "--group", group, "--from-beginning", "--max-messages", "20"], b).split()) == 20

    def committed():
        return {int(r["PARTITION"]): int(r["CURRENT-OFFSET"]) for r in describe_group(b, group)[1]}

    assert committed() == {0: 10, 1: 10}
    out = run(["group", "reset-offsets", group, "--topic", topic, "--to-earliest"], b)
    assert out.returncode == 0
    assert {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in table(out.stdout.decode())} == {0: 0, 1: 0}
    assert "--execute" in out.stderr.decode()
    assert committed() == {0: 10, 1: 10}, "a plan commits nothing"

    ok(["group", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute"], b)
    assert committed() == {0: 0, 1: 0}
    again = ok(["consume", topic, "--group", group, "--max-messages", "20", "--timeout-ms", "20000"], b).split()
    assert sorted(again) == sorted(f"v{i}" for i in range(20)), "the group read from the new position"

    # Records at base + 5 s and later: offsets 3 (p0, record 6) and 2 (p1, record 5).
    plan = ok(["group", "reset-offsets", group, "--topic", topic, "--to-datetime", at, "--execute"], b)
    assert {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in table(plan)} == {0: 3, 1: 2}
    assert committed() == {0: 3, 1: 2}
    tail = ok(["consume", topic, "--group", group, "--max-messages", "15", "--timeout-ms", "20000"], b).split()
    assert sorted(tail) == sorted(f"v{i}" for i in range(5, 20))

    ok(["group", "reset-offsets", group, "--topic", f"{topic}:1", "--to-offset", "4", "--execute"], b)
    assert committed() == {0: 10, 1: 4}
    ok(["group", "reset-offsets", group, "--topic", topic, "--to-offset", "999", "--execute"], b)
    assert committed() == {0: 10, 1: 10}, "clamped to the log end"
    ok(["group", "reset-offsets", group, "--topic", topic, "--to-datetime", "2030-01-01T00:00:00Z", "--execute"], b)
    assert committed() == {0: 10, 1: 10}, "no record that recent: the log end"
    assert "UNKNOWN_TOPIC_OR_PARTITION" in fails(
        ["group", "reset-offsets", group, "--topic", name("none"), "--to-latest"], b)


def test_group_list_describe_and_delete(broker):
    b = broker.bootstrap
    topic = name("gl")
    create(b, topic, 1)
    groups = [name("g"), name("g")]
    ok(["produce", topic], b, input=b"x\n")
    for g in groups:
        ok(["consume", topic, "--group", g, "--from-beginning", "--max-messages", "1"], b)
    listed = ok(["group", "list"], b).splitlines()
    assert set(groups) <= set(listed)
    line = fails(["group", "describe", name("nobody")], b)
    assert "GROUP_ID_NOT_FOUND" in line, line
    assert ok(["group", "delete"] + groups, b) == \
        f"Deletion of requested consumer groups ('{groups[0]}', '{groups[1]}') was successful.\n"
    wait_until(lambda: not set(groups) & set(ok(["group", "list"], b).splitlines()), TIMEOUT_S, "groups gone")
    line = fails(["group", "delete", groups[0]], b)
    assert "GROUP_ID_NOT_FOUND" in line and groups[0] in line, line


def test_a_corelog_member_shares_a_group_with_a_librdkafka_member(broker):
    """Both members speak the consumer protocol: whichever leads, the range
    assignor gives the first member id ("corelog-..." < "rdkafka-...") the
    first half of the partitions."""
    b = broker.bootstrap
    topic, group = name("mixed"), name("g")
    create(b, topic, 4)
    p = Producer({"bootstrap.servers": b})
    for i in range(400):
        p.produce(topic, value=str(i).encode(), partition=i % 4)
    assert p.flush(TIMEOUT_S) == 0
    c = Consumer({"bootstrap.servers": b, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    try:
        wait_until(lambda: c.poll(0.1) is not None and len(c.assignment()) == 4, TIMEOUT_S, "all four assigned")
        proc = subprocess.Popen([BINARY, "consume", topic, "--group", group, "--from-beginning",
                                 "--max-messages", "150", "--timeout-ms", "20000", "--bootstrap", b],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        shared = []

        def step():
            c.poll(0.1)  # keeps librdkafka's member alive and rejoining
            if {tp.partition for tp in c.assignment()} == {2, 3}:
                shared.append(True)
            return proc.poll() is not None

        wait_until(step, TIMEOUT_S, "the corelog member done")
        out, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 0, err.decode()
        values = [int(v) for v in out.split()]
        assert len(values) == 150 and {v % 4 for v in values} <= {0, 1}, "partitions 0 and 1 only"
        assert shared, "librdkafka's member held partitions 2 and 3 meanwhile"
    finally:
        c.close()


def test_user_add_list_remove_and_log_in(make_broker, tmp_path):
    b = make_broker(listeners=("PLAINTEXT", "SASL_PLAINTEXT")).start()
    sasl = b.bootstrap_of("SASL_PLAINTEXT")

    def producer(mechanism, user, password, errors):
        return Producer({"bootstrap.servers": sasl, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
                         "error_cb": errors.append})

    def logs_in(mechanism, user, password):
        p, delivered = producer(mechanism, user, password, []), []
        p.produce("cli-users", b"x", on_delivery=lambda e, m: delivered.append(e is None))
        p.flush(TIMEOUT_S)
        return delivered == [True]

    def refused(mechanism, user, password):
        errors = []
        p = producer(mechanism, user, password, errors)
        p.produce("cli-users", b"x")

        def seen():
            p.poll(0.1)
            return any(e.code() == KafkaError._AUTHENTICATION for e in errors)

        wait_until(seen, TIMEOUT_S, "an authentication error")
        p.purge()
        return True

    # The password from stdin, then from a file; never on the command line.
    out = ok(["user", "add", "dana"], b.bootstrap, input=b"dana-pw\n")
    assert "SCRAM-SHA-512 credential of user dana" in out
    secret = tmp_path / "pw"
    secret.write_text("dana-pw\n")
    ok(["user", "add", "dana", "--mechanism", "SCRAM-SHA-256", "--iterations", "8192",
        "--password-file", str(secret)], b.bootstrap)
    assert ok(["user", "list"], b.bootstrap).split() == [
        "USER", "MECHANISM", "ITERATIONS", "dana", "SCRAM-SHA-256", "8192", "dana", "SCRAM-SHA-512", "4096"]
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]:
        assert logs_in(mechanism, "dana", "dana-pw"), mechanism
    assert "RESOURCE_NOT_FOUND" in fails(["user", "list", "dana", "nobody"], b.bootstrap)
    assert "no password" in fails(["user", "add", "erin"], b.bootstrap, input=b"")

    ok(["user", "remove", "dana", "--mechanism", "SCRAM-SHA-256"], b.bootstrap)
    assert ok(["user", "list", "dana"], b.bootstrap).split()[3:] == ["dana", "SCRAM-SHA-512", "4096"]
    assert "SCRAM-SHA-512" in ok(["user", "remove", "dana"], b.bootstrap)
    assert ok(["user", "list"], b.bootstrap).split() == ["USER", "MECHANISM", "ITERATIONS"]
    assert "RESOURCE_NOT_FOUND" in fails(["user", "remove", "dana"], b.bootstrap)
    assert refused("SCRAM-SHA-512", "dana", "dana-pw")


def test_acl_add_list_remove_as_kafka_acls_prints_them(make_broker):
    # Without the authorizer the broker answers SECURITY_DISABLED.
    plain = make_broker().start()
    assert "SECURITY_DISABLED" in fails(["acl", "list"], plain.bootstrap)
    b = make_broker(extra_args=["--authorizer", "on", "--super-users", "User:ANONYMOUS"]).start()
    out = ok(["acl", "add", "--topic", "orders-", "--resource-pattern-type", "prefixed",
              "--allow-principal", "User:alice", "--operation", "Read", "--operation", "Write"], b.bootstrap)
    pattern = "`ResourcePattern(resourceType=TOPIC, name=orders-, patternType=PREFIXED)`:"
    assert out.splitlines()[:3] == [
        f"Adding ACLs for resource {pattern}",
        " \t(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)",
        " \t(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)",
    ]
    ok(["acl", "add", "--group", "g", "--allow-principal", "User:bob", "--deny-principal", "User:eve",
        "--operation", "Read"], b.bootstrap)
    listed = ok(["acl", "list"], b.bootstrap)
    assert f"Current ACLs for resource {pattern}" in listed
    assert "(principal=User:eve, host=*, operation=READ, permissionType=DENY)" in listed
    # MATCH: the patterns that cover a name.
    matched = ok(["acl", "list", "--topic", "orders-eu", "--resource-pattern-type", "match"], b.bootstrap)
    assert pattern in matched and "GROUP" not in matched
    assert "User:bob" in ok(["acl", "list", "--principal", "User:bob"], b.bootstrap)
    assert "User:alice" not in ok(["acl", "list", "--principal", "User:bob"], b.bootstrap)

    removed = ok(["acl", "remove", "--group", "g", "--deny-principal", "User:eve"], b.bootstrap)
    assert removed.splitlines()[1] == " \t(principal=User:eve, host=*, operation=READ, permissionType=DENY)"
    ok(["acl", "remove", "--topic", "orders-", "--resource-pattern-type", "prefixed"], b.bootstrap)
    left = ok(["acl", "list"], b.bootstrap)
    assert "User:bob" in left and "User:eve" not in left and "orders-" not in left
    # The CLUSTER resource has one name; the broker refuses a bad request.
    ok(["acl", "add", "--cluster", "--allow-principal", "User:ops", "--operation", "Alter"], b.bootstrap)
    assert "name=kafka-cluster" in ok(["acl", "list", "--cluster"], b.bootstrap)


def test_quota_set_list_remove(broker):
    b = broker.bootstrap
    assert "Completed" in ok(["quota", "set", "--user", "alice", "--producer-byte-rate", "1048576",
                              "--consumer-byte-rate", "2097152"], b)
    ok(["quota", "set", "--user-default", "--client-id", "app", "--request-percentage", "12.5"], b)
    ok(["quota", "set", "--client-id-default", "--consumer-byte-rate", "4096"], b)
    rows = [line.split() for line in ok(["quota", "list"], b).splitlines()]
    assert rows[0] == ["ENTITY", "KEY", "VALUE"]
    assert sorted(rows[1:]) == sorted([
        ["user=alice", "producer_byte_rate", "1048576"],
        ["user=alice", "consumer_byte_rate", "2097152"],
        ["user=<default>,client-id=app", "request_percentage", "12.5"],
        ["client-id=<default>", "consumer_byte_rate", "4096"],
    ])
    assert [r[0] for r in (l.split() for l in ok(["quota", "list", "--user", "alice"], b).splitlines()[1:])] == \
        ["user=alice", "user=alice"]
    ok(["quota", "remove", "--user", "alice", "--key", "consumer_byte_rate"], b)
    ok(["quota", "remove", "--client-id-default"], b)
    rows = [line.split() for line in ok(["quota", "list"], b).splitlines()[1:]]
    assert sorted(rows) == sorted([["user=alice", "producer_byte_rate", "1048576"],
                                   ["user=<default>,client-id=app", "request_percentage", "12.5"]])
    line = fails(["quota", "set", "--user", "alice", "--producer-byte-rate", "1.5"], b)
    assert "INVALID_REQUEST" in line and "producer_byte_rate" in line, line


@pytest.fixture(scope="module")
def cli_pki(tmp_path_factory):
    from test_tls import Pki
    p = Pki(tmp_path_factory.mktemp("cli-pki"))
    p.issue("server", "/CN=localhost", "ca", "serverAuth")
    p.issue("carol", "/CN=carol", "ca", "clientAuth")
    return p


@pytest.mark.parametrize("listener, config", [
    ("SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=alice-pw\n"),
    ("SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-256\nsasl.jaas.config=org.apache.kafka.common.security.scram."
                       "ScramLoginModule required username=\"alice\" password=\"alice-pw\";\n"),
    ("SASL_PLAINTEXT", "sasl.mechanism=PLAIN\nsasl.username=alice\nsasl.password=alice-pw\n"),
    ("SASL_SSL", "sasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=alice-pw\n"
                 "ssl.ca.location={ca}\n"),
    ("SSL", "ssl.ca.location={ca}\nssl.certificate.location={carol}.pem\nssl.key.location={carol}.key\n"),
])
def test_commands_reach_secured_listeners_with_a_command_config(make_broker, cli_pki, tmp_path, listener, config):
    """`--command-config FILE`, as Kafka's tools take it, in librdkafka's
    keys: the admin, produce and consume commands work over SASL, TLS and
    mTLS; with the authorizer on, what they may do is the principal's."""
    b = make_broker(listeners=("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"), extra_args=[
        "--ssl-certificate", cli_pki.path("server.pem"), "--ssl-key", cli_pki.path("server.key"),
        "--ssl-client-ca", cli_pki.path("ca.pem"), "--ssl-client-auth", "requested",
        "--scram-credential", "alice:SCRAM-SHA-512:alice-pw", "--scram-credential", "alice:SCRAM-SHA-256:alice-pw",
        "--authorizer", "on", "--super-users", "User:alice;User:CN=carol"]).start()
    props = tmp_path / "client.properties"
    props.write_text(f"security.protocol={listener}\n"
                     + config.format(ca=cli_pki.path("ca.pem"), carol=cli_pki.path("carol")))
    secured = ["--command-config", str(props)]
    where = b.bootstrap_of(listener)
    topic = name("secured")
    ok(["topic", "create", topic, "--partitions", "2", *secured], where)
    assert topic in ok(["topic", "list", *secured], where)
    ok(["produce", topic, *secured], where, input=b"one\ntwo\nthree\n")
    got = ok(["consume", topic, "--from-beginning", "--max-messages", "3", *secured], where)
    assert sorted(got.split()) == ["one", "three", "two"]
    # Without the file the same listener refuses the command (a SASL
    # listener closes it, a TLS one fails the handshake): one line, exit 1.
    fails(["topic", "list"], where)


def test_a_wrong_password_in_a_command_config_fails_with_one_line_and_no_secret(make_broker, tmp_path):
    b = make_broker(listeners=("PLAINTEXT", "SASL_PLAINTEXT"),
                    extra_args=["--scram-credential", "alice:SCRAM-SHA-512:alice-pw"]).start()
    props = tmp_path / "client.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
                     "sasl.username=alice\nsasl.password=not-her-pw\n")
    line = fails(["topic", "list", "--command-config", str(props)], b.bootstrap_of("SASL_PLAINTEXT"))
    assert "Invalid username or password" in line and "not-her-pw" not in line, line
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\n")
    line = fails(["topic", "list", "--command-config", str(props)], b.bootstrap_of("SASL_PLAINTEXT"))
    assert "sasl.mechanism" in line, line


def test_a_long_consume_renews_its_sasl_session(make_broker, tmp_path):
    """Sessions last 1.5 s (KIP-368); a consume that polls for 5 s opens
    a new connection before each session ends, so the broker never closes
    one under it: it prints every record and exits 0 at its timeout."""
    b = make_broker(listeners=("PLAINTEXT", "SASL_PLAINTEXT"), extra_args=[
        "--scram-credential", "alice:SCRAM-SHA-512:alice-pw", "--connections-max-reauth-ms", "1500"]).start()
    props = tmp_path / "client.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n"
                     "sasl.username=alice\nsasl.password=alice-pw\n")
    where, secured = b.bootstrap_of("SASL_PLAINTEXT"), ["--command-config", str(props)]
    topic = name("renewed")
    ok(["topic", "create", topic, *secured], where)
    ok(["produce", topic, *secured], where, input=b"a\nb\n")
    got = ok(["consume", topic, "--from-beginning", "--timeout-ms", "5000", *secured], where)
    assert got.split() == ["a", "b"]
    assert "expired" not in b.log()
