"""Transactions through real clients: librdkafka's transactional producer
against a read_committed and a read_uncommitted consumer. Committed
records are visible to read_committed, aborted ones never; markers take
offsets; an open transaction holds back every later record from
read_committed readers until it ends; a new producer instance fences the
old one and aborts its open transaction; a transaction past its timeout
is aborted by the coordinator; a broker killed mid-transaction comes back
with nothing stuck and nothing aborted readable."""

import os
import signal
import subprocess
import sys
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until
from test_metrics import scrape, total

TIMEOUT_S = 60


def create(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result arrives
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def txn_producer(bootstrap, tid, **extra):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 1, **extra})
    p.init_transactions(TIMEOUT_S)
    return p


def consumer(bootstrap, isolation):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"g-{uuid.uuid4().hex[:6]}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
    })


def read_all(bootstrap, topic, partitions, isolation, expected):
    """Reads from the start until exactly the values `expected` (a sorted
    list) arrived; fails on any other value or when they do not all come.
    Markers are written after EndTxn answers, so committed records become
    readable a little later: the wait is for them, bounded."""
    c = consumer(bootstrap, isolation)
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []

    def arrived():
        for m in c.consume(500, 0.2):
            if m.error() is None:
                got.append((m.partition(), m.offset(), m.value().decode()))
                assert m.value().decode() in expected, f"unexpected {m.value()!r} ({isolation})"
        return len(got) >= len(expected)

    wait_until(arrived, TIMEOUT_S, f"{isolation} records")
    c.close()
    assert values(got) == expected
    return got


def stable_and_high(bootstrap, topic, partition):
    """(last stable offset, high watermark): ListOffsets LATEST as a
    read_committed and a read_uncommitted consumer ask it."""
    out = []
    for isolation in ("read_committed", "read_uncommitted"):
        c = consumer(bootstrap, isolation)
        out.append(c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)[1])
        c.close()
    return tuple(out)


def java_partition(name, partitions=50):
    """Kafka's partition of a group or transactional id: abs(Java
    String.hashCode) % 50."""
    h = 0
    for ch in name:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def group_apart_from(tid, prefix):
    """A group name whose coordinator is another shard than `tid`'s (the
    internal topics' partitions alternate over a node's two shards), so
    TxnOffsetCommit's check with the transaction coordinator crosses
    shards."""
    return next(g for g in (f"{prefix}-{i}" for i in range(1000))
                if java_partition(g) % 2 != java_partition(tid) % 2)


def leader_of(bootstrap, topic, partition):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S)
    return md.topics[topic].partitions[partition].leader


def values(records):
    return sorted(v for _, _, v in records)


def test_committed_records_are_visible_aborted_ones_never_and_markers_take_offsets(broker):
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 2)
    p = txn_producer(broker.bootstrap, f"tid-{topic}")
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"c1-{i}", partition=i % 2)
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(6):
        p.produce(topic, value=f"a-{i}", partition=i % 2)
    p.flush(TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"c2-{i}", partition=i % 2)
    p.commit_transaction(TIMEOUT_S)

    expected = sorted([f"c1-{i}" for i in range(10)] + [f"c2-{i}" for i in range(4)])
    read_all(broker.bootstrap, topic, 2, "read_committed", expected)
    uncommitted = read_all(broker.bootstrap, topic, 2, "read_uncommitted",
                           sorted(expected + [f"a-{i}" for i in range(6)]))
    # Three markers per partition, each one offset: 10 records per
    # partition plus 3 markers end at 13, stable once the last is written.
    for part in range(2):
        wait_until(lambda: stable_and_high(broker.bootstrap, topic, part) == (13, 13), TIMEOUT_S,
                   "every marker written")
    offsets = sorted(o for q, o, _ in uncommitted if q == 0)
    assert len(offsets) == 10 and offsets[-1] == 11, f"markers leave gaps: {offsets}"
    # The two partitions are on the node's two shards: the coordinator's
    # markers for the other shard's partition went over the shards'
    # channel, never as a WriteTxnMarkers request to its socket.
    assert len({leader_of(broker.bootstrap, topic, q) for q in range(2)}) == 2
    samples, _ = scrape(broker)
    assert total(samples, "corelog_requests_total", api="EndTxn") == 3
    assert total(samples, "corelog_requests_total", api="WriteTxnMarkers") == 0


def test_an_open_transaction_holds_back_later_records_of_every_producer(broker):
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    tx = txn_producer(broker.bootstrap, f"tid-{topic}")
    tx.begin_transaction()
    tx.produce(topic, value="in-txn", partition=0)
    tx.flush(TIMEOUT_S)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic, value="plain", partition=0)
    assert plain.flush(TIMEOUT_S) == 0

    read_all(broker.bootstrap, topic, 1, "read_uncommitted", ["in-txn", "plain"])
    # The open transaction holds the last stable offset at its first record.
    assert stable_and_high(broker.bootstrap, topic, 0) == (0, 2)
    tx.commit_transaction(TIMEOUT_S)
    wait_until(lambda: stable_and_high(broker.bootstrap, topic, 0) == (3, 3), TIMEOUT_S, "the commit")
    read_all(broker.bootstrap, topic, 1, "read_committed", ["in-txn", "plain"])


def test_a_new_instance_fences_the_old_one_and_aborts_its_transaction(broker):
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    tid = f"tid-{topic}"
    old = txn_producer(broker.bootstrap, tid)
    old.begin_transaction()
    old.produce(topic, value="zombie", partition=0)
    old.flush(TIMEOUT_S)
    new = txn_producer(broker.bootstrap, tid)
    new.begin_transaction()
    new.produce(topic, value="fresh", partition=0)
    new.commit_transaction(TIMEOUT_S)
    try:
        old.commit_transaction(TIMEOUT_S)
        raise AssertionError("the fenced producer committed")
    except KafkaException as e:
        assert e.args[0].fatal() or e.args[0].txn_requires_abort(), e
    read_all(broker.bootstrap, topic, 1, "read_committed", ["fresh"])


def test_a_transaction_past_its_timeout_is_aborted_by_the_coordinator(broker):
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    tx = txn_producer(broker.bootstrap, f"tid-{topic}", **{"transaction.timeout.ms": 5000})
    tx.begin_transaction()
    tx.produce(topic, value="forgotten", partition=0)
    tx.flush(TIMEOUT_S)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic, value="after", partition=0)
    assert plain.flush(TIMEOUT_S) == 0
    assert stable_and_high(broker.bootstrap, topic, 0) == (0, 2)
    # The coordinator aborts it: read_committed readers get past it.
    wait_until(lambda: stable_and_high(broker.bootstrap, topic, 0) == (3, 3), TIMEOUT_S,
               "the expired transaction aborted")
    read_all(broker.bootstrap, topic, 1, "read_committed", ["after"])


def test_a_broker_killed_mid_transaction_comes_back_with_nothing_stuck(make_broker):
    b = make_broker().start()
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    create(b.bootstrap, topic, 2)
    tid = f"tid-{topic}"
    p = txn_producer(b.bootstrap, tid)
    p.begin_transaction()
    p.produce(topic, value="first", partition=0)
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"torn-{i}", partition=i % 2)
    p.flush(TIMEOUT_S)
    b.stop(signal.SIGKILL)
    b.start()
    again = txn_producer(b.bootstrap, tid)
    again.begin_transaction()
    again.produce(topic, value="second", partition=1)
    again.commit_transaction(TIMEOUT_S)
    read_all(b.bootstrap, topic, 2, "read_committed", ["first", "second"])
    read_all(b.bootstrap, topic, 2, "read_uncommitted",
             sorted(["first", "second"] + [f"torn-{i}" for i in range(4)]))


def test_offsets_sent_to_a_transaction_are_committed_with_it_and_only_then(broker):
    src, dst = f"src-{uuid.uuid4().hex[:8]}", f"dst-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, src, 1)
    create(broker.bootstrap, dst, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        plain.produce(src, value=f"v{i}", partition=0)
    assert plain.flush(TIMEOUT_S) == 0
    tid = f"tid-{src}"
    group = group_apart_from(tid, f"g-{src}")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.assign([TopicPartition(src, 0, 0)])
    inputs = []
    wait_until(lambda: inputs.extend(m for m in c.consume(10, 0.2) if m.error() is None)
               or len(inputs) >= 10, TIMEOUT_S, "the inputs")
    p = txn_producer(broker.bootstrap, tid)
    assert leader_of(broker.bootstrap, "__transaction_state", java_partition(tid)) != \
        leader_of(broker.bootstrap, "__consumer_offsets", java_partition(group)), "coordinators apart"
    p.begin_transaction()
    for m in inputs:
        p.produce(dst, value=m.value().decode().upper(), partition=0)
    p.send_offsets_to_transaction([TopicPartition(src, 0, 10)], c.consumer_group_metadata(), TIMEOUT_S)

    def committed(timeout=TIMEOUT_S):
        return c.committed([TopicPartition(src, 0)], timeout=timeout)[0].offset

    # A read_committed consumer asks for stable offsets (KIP-447): while
    # the transaction holds one it is told to wait (librdkafka retries
    # until its timeout), never given the offset from before.
    try:
        got = committed(timeout=2)
        raise AssertionError(f"an offset while the transaction is open: {got}")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError._TIMED_OUT, e
    p.commit_transaction(TIMEOUT_S)

    wait_until(lambda: committed() == 10, TIMEOUT_S, "offsets committed with the transaction")
    # An aborted transaction's offsets never count.
    p.begin_transaction()
    p.produce(dst, value="never", partition=0)
    # Written before the abort: librdkafka purges what it has not sent yet
    # (its AddPartitionsToTxn may still be retrying while the previous
    # commit's markers are written), and then the partition holds no
    # aborted record and maybe no marker.
    assert p.flush(TIMEOUT_S) == 0
    p.send_offsets_to_transaction([TopicPartition(src, 0, 3)], c.consumer_group_metadata(), TIMEOUT_S)
    p.abort_transaction(TIMEOUT_S)
    seen = []
    try:
        wait_until(lambda: seen.append(stable_and_high(broker.bootstrap, dst, 0)) or seen[-1] == (13, 13),
                   TIMEOUT_S, "the abort")
    except AssertionError as e:
        raise AssertionError(f"{e}: (last stable offset, high watermark) {seen[-1:]}") from None
    assert committed() == 10
    c.close()
    read_all(broker.bootstrap, dst, 1, "read_committed", sorted(f"V{i}" for i in range(10)))
    # After a SIGKILL the group coordinator replays `__consumer_offsets`:
    # the committed transaction's offsets count, the aborted one's never.
    broker.stop(signal.SIGKILL)
    broker.start()
    again = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                      "enable.auto.commit": False, "isolation.level": "read_committed"})

    def committed_again():
        try:
            return again.committed([TopicPartition(src, 0)], timeout=5)[0].offset
        except KafkaException:
            return None  # the coordinator still loading

    wait_until(lambda: committed_again() == 10, TIMEOUT_S, "the offsets after a restart")
    again.close()


def test_a_consume_transform_produce_app_killed_mid_run_outputs_each_input_once(broker):
    """Exactly once across a SIGKILL: the app (tests/broker/txn_app.py)
    is killed inside a transaction whose outputs and offsets were sent
    but not committed, restarted with the same
    group and transactional id, and every input's output is readable by
    read_committed exactly once."""
    src, dst = f"src-{uuid.uuid4().hex[:8]}", f"dst-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, src, 2)
    create(broker.bootstrap, dst, 2)
    n = 3000
    plain = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(n):
        plain.produce(src, value=f"{i}", partition=i % 2)
    assert plain.flush(TIMEOUT_S) == 0
    app_args = [sys.executable, os.path.join(os.path.dirname(__file__), "txn_app.py"),
                broker.bootstrap, src, dst, group_apart_from(f"tid-{src}", f"g-{src}"), f"tid-{src}"]
    # It kills itself in its 5th transaction, outputs and offsets sent,
    # not committed.
    first = subprocess.Popen(app_args + ["5"], stdout=subprocess.PIPE, text=True)
    try:
        assert first.wait(TIMEOUT_S) == -signal.SIGKILL
    finally:
        first.kill()
    second = subprocess.Popen(app_args, stdout=subprocess.PIPE, text=True)
    try:
        read_all(broker.bootstrap, dst, 2, "read_committed", sorted(f"out-{i}" for i in range(n)))
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait(TIMEOUT_S)
