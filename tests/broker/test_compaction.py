"""Compacted topics with real clients: a keyed topic with overwrites and
tombstones compacts to the latest value per key; consumers read the same
latest values before and after, and after a SIGKILL of the broker.
Committed offsets live in the compacted __consumer_offsets and survive its
compaction."""

import signal
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until

TIMEOUT_S = 60
FAST = ["--log-maintenance-ms", "100"]


def read_partition(bootstrap, topic):
    """Every record of partition 0 up to the high watermark: (offset, key, value)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while (not got or got[-1][0] < high - 1) and time.monotonic() < deadline:
        for m in c.consume(1000, 0.2):
            assert m.error() is None, m.error()
            got.append((m.offset(), m.key(), m.value()))
    c.close()
    assert got and got[-1][0] == high - 1, "read up to the high watermark"
    return got


def latest(records):
    out = {}
    for _, k, v in records:
        out[k] = v
    return out


def test_a_keyed_topic_compacts_to_the_latest_value_per_key(make_broker):
    b = make_broker(extra_args=FAST).start()
    topic = f"compact-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    configs = {"cleanup.policy": "compact", "segment.bytes": "1024", "delete.retention.ms": "86400000"}
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(TIMEOUT_S)
    # One record per batch: a batch must fit in a 1 KiB segment. What was
    # written is known from the delivery reports (the broker may compact
    # before any read).
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "batch.num.messages": 1})
    written = []
    errors = []

    def delivered(err, msg):
        errors.append(err)
        if err is None:
            written.append((msg.offset(), msg.key(), msg.value()))

    n = 400
    for i in range(n):
        key = f"key{i % 10}".encode()
        value = None if (i % 10 == 9 and i > n // 2) else f"value{i}".encode()
        p.produce(topic, key=key, value=value, partition=0, on_delivery=delivered)
        p.poll(0)
    assert p.flush(TIMEOUT_S) == 0
    assert errors == [None] * n
    written.sort()
    assert [o for o, _, _ in written] == list(range(n))

    # The broker compacts in the background: wait (bounded) until the
    # partition holds fewer records, then compare what consumers see.
    deadline = time.monotonic() + TIMEOUT_S
    after = read_partition(b.bootstrap, topic)
    while len(after) == n and time.monotonic() < deadline:
        after = read_partition(b.bootstrap, topic)
    assert len(after) < n, "compaction removed superseded records"
    assert latest(after) == latest(written)
    assert latest(after)[b"key9"] is None, "the young tombstone is kept"
    positions = {o: (k, v) for o, k, v in written}
    for o, k, v in after:
        assert positions[o] == (k, v), f"offset {o} keeps its record"
    assert "compacted" in b.log()

    assert b.stop(signal.SIGKILL) != 0
    b.start()
    again = read_partition(b.bootstrap, topic)
    assert latest(again) == latest(written)


def test_committed_offsets_survive_compaction_of_consumer_offsets(make_broker):
    b = make_broker(extra_args=FAST + ["--offsets-topic-segment-bytes", "1024"]).start()
    topic = f"t-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all"})
    for i in range(50):
        p.produce(topic, value=str(i).encode(), partition=0)
    assert p.flush(TIMEOUT_S) == 0
    # Many commits of one partition: all but the last are superseded.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    for i in range(1, 51):
        c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
    c.close()

    def committed():
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group})
        got = c.committed([TopicPartition(topic, 0)], timeout=TIMEOUT_S)
        c.close()
        return got[0].offset

    # 1 KiB segments roll every few commits; wait (bounded) for a round.
    deadline = time.monotonic() + TIMEOUT_S
    while "compacted __consumer_offsets" not in b.log() and time.monotonic() < deadline:
        assert committed() == 50
    assert "compacted __consumer_offsets" in b.log()
    b.restart()
    assert committed() == 50
    assert b.stop(signal.SIGKILL) != 0
    b.start()
    assert committed() == 50


def test_compaction_removes_aborted_transactions_and_compacts_committed_ones(make_broker):
    """A compacted topic written by a transactional producer: the cleaner
    removes the aborted transactions' records (even a read_uncommitted
    consumer stops seeing them) and compacts the committed ones like any
    record, so the latest committed value per key is what remains."""
    from test_transactions import txn_producer

    b = make_broker(extra_args=FAST).start()
    topic = f"compact-txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    configs = {"cleanup.policy": "compact", "segment.bytes": "1024", "delete.retention.ms": "86400000"}
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(TIMEOUT_S)
    p = txn_producer(b.bootstrap, f"tid-{topic}", **{"batch.num.messages": 1})
    for round_ in range(30):
        p.begin_transaction()
        for k in range(3):
            p.produce(topic, key=f"k{k}", value=f"{round_}-{'abort' if round_ % 3 == 0 else 'commit'}",
                      partition=0)
        if round_ % 3 == 0:
            p.flush(TIMEOUT_S)
            p.abort_transaction(TIMEOUT_S)
        else:
            p.commit_transaction(TIMEOUT_S)
    # Plain records after them, so that every transaction's segment closes.
    plain = Producer({"bootstrap.servers": b.bootstrap, "batch.num.messages": 1})
    for i in range(40):
        plain.produce(topic, key=f"f{i % 5}", value=f"fill{i}", partition=0)
    assert plain.flush(TIMEOUT_S) == 0

    def aborted_gone():
        values = [v.decode() for _, _, v in read_partition(b.bootstrap, topic) if v is not None]
        return not any(v.endswith("abort") for v in values)

    wait_until(aborted_gone, TIMEOUT_S, "the aborted records compacted away")
    got = read_partition(b.bootstrap, topic)
    ks = {k: v for k, v in latest(got).items() if k.startswith(b"k")}
    assert ks == {f"k{k}".encode(): b"29-commit" for k in range(3)}
    # The committed rounds compacted too: far fewer than 20 rounds' records.
    assert sum(1 for _, k, _ in got if k.startswith(b"k")) < 20 * 3
