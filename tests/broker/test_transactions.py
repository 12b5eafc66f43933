"""Transactions through real clients: librdkafka's transactional producer
against a read_committed and a read_uncommitted consumer. Committed
records are visible to read_committed, aborted ones never; markers take
offsets; an open transaction holds back every later record from
read_committed readers until it ends; a new producer instance fences the
old one and aborts its open transaction; a transaction past its timeout
is aborted by the coordinator; a broker killed mid-transaction comes back
with nothing stuck and nothing aborted readable."""

import signal
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until

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


def read_until_end(bootstrap, topic, partitions, isolation):
    """Every record `isolation` lets a consumer read, up to where it can
    read now (the last stable offset or the high watermark), as
    (partition, offset, value)."""
    c = consumer(bootstrap, isolation)
    ends = {}
    for p in range(partitions):
        low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)
        ends[p] = high
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = []
    done = set()

    def caught_up():
        for m in c.consume(500, 0.2):
            if m.error() is None:
                got.append((m.partition(), m.offset(), m.value().decode()))
        for p in range(partitions):
            pos = c.position([TopicPartition(topic, p)])[0].offset
            if pos >= ends[p] or (isolation == "read_committed" and pos >= 0 and _stable(c, topic, p) <= pos):
                done.add(p)
        return len(done) == partitions

    wait_until(caught_up, TIMEOUT_S, f"{isolation} consumer caught up")
    c.close()
    return got


def _stable(c, topic, p):
    # librdkafka reports the last stable offset as the high watermark of
    # a read_committed consumer.
    return c.get_watermark_offsets(TopicPartition(topic, p), cached=True)[1]


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

    committed = read_until_end(broker.bootstrap, topic, 2, "read_committed")
    expected = sorted([f"c1-{i}" for i in range(10)] + [f"c2-{i}" for i in range(4)])
    assert values(committed) == expected
    uncommitted = read_until_end(broker.bootstrap, topic, 2, "read_uncommitted")
    assert values(uncommitted) == sorted(expected + [f"a-{i}" for i in range(6)])
    # Three markers per partition, each one offset: 10 records per
    # partition plus 3 markers end at 13.
    c = consumer(broker.bootstrap, "read_uncommitted")
    for part in range(2):
        assert c.get_watermark_offsets(TopicPartition(topic, part), timeout=TIMEOUT_S)[1] == 10 + 3
    c.close()
    offsets = sorted(o for q, o, _ in uncommitted if q == 0)
    assert len(offsets) == 10 and offsets[-1] == 11, f"markers leave gaps: {offsets}"


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

    assert values(read_until_end(broker.bootstrap, topic, 1, "read_uncommitted")) == ["in-txn", "plain"]
    c = consumer(broker.bootstrap, "read_committed")
    c.assign([TopicPartition(topic, 0, 0)])
    seen = [m for m in c.consume(10, 2.0) if m.error() is None]
    assert seen == [], "nothing past the open transaction's first offset"
    tx.commit_transaction(TIMEOUT_S)
    got = []
    wait_until(lambda: got.extend(m.value().decode() for m in c.consume(10, 0.2) if m.error() is None)
               or len(got) >= 2, TIMEOUT_S, "records after the commit")
    assert got == ["in-txn", "plain"]
    c.close()


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
    assert values(read_until_end(broker.bootstrap, topic, 1, "read_committed")) == ["fresh"]


def test_a_transaction_past_its_timeout_is_aborted_by_the_coordinator(broker):
    topic = f"tx-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    tx = txn_producer(broker.bootstrap, f"tid-{topic}", **{"transaction.timeout.ms": 2000})
    tx.begin_transaction()
    tx.produce(topic, value="forgotten", partition=0)
    tx.flush(TIMEOUT_S)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic, value="after", partition=0)
    assert plain.flush(TIMEOUT_S) == 0
    # The coordinator aborts it: read_committed readers get past it.
    c = consumer(broker.bootstrap, "read_committed")
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    wait_until(lambda: got.extend(m.value().decode() for m in c.consume(10, 0.2) if m.error() is None)
               or got == ["after"], TIMEOUT_S, "the expired transaction aborted")
    c.close()


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
    assert values(read_until_end(b.bootstrap, topic, 2, "read_committed")) == ["first", "second"]
    assert len(read_until_end(b.bootstrap, topic, 2, "read_uncommitted")) == 6
