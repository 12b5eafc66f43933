"""Consumer groups and committed offsets with real clients: librdkafka
consumers split a topic, rebalance when members join, leave or are
SIGKILLed; committed offsets resume across consumer restarts, a broker
restart and a broker SIGKILL; kafka-python's consumer and admin client
work against the same coordinator.

Every wait is bounded; assignments are observed, never assumed after a
sleep."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 60


def create(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result arrives
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def produce(bootstrap, topic, values):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for v in values:
        p.produce(topic, key=v, value=v)
    assert p.flush(TIMEOUT_S) == 0


def consumer(bootstrap, group, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    conf.update(extra)
    return Consumer(conf)


class Member:
    """A subscribed consumer and everything it has consumed."""

    def __init__(self, bootstrap, group, topic, **extra):
        self.c = consumer(bootstrap, group, **extra)
        self.c.subscribe([topic])
        self.seen = []  # (partition, offset, value)

    def poll(self):
        m = self.c.poll(0.1)
        if m is not None:
            assert m.error() is None, m.error()
            self.seen.append((m.partition(), m.offset(), m.value()))

    def partitions(self):
        return {tp.partition for tp in self.c.assignment()}


def poll_until(members, predicate, what):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for m in members:
            m.poll()
        if predicate():
            return
    raise AssertionError(f"timed out waiting for {what}: " + repr([m.partitions() for m in members]))


def split_evenly(members, partitions):
    """Every member owns some partitions, none twice, all covered."""
    owned = [m.partitions() for m in members]
    union = set().union(*owned)
    return all(owned) and sum(len(o) for o in owned) == len(union) == partitions


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_members_join_and_leave_and_every_record_is_consumed(broker, strategy):
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 6)
    extra = {"partition.assignment.strategy": strategy}
    a = Member(broker.bootstrap, group, topic, **extra)
    b = Member(broker.bootstrap, group, topic, **extra)
    poll_until([a, b], lambda: split_evenly([a, b], 6), "two members to split 6 partitions")
    values = [f"r{i}".encode() for i in range(600)]
    produce(broker.bootstrap, topic, values[:300])
    c = Member(broker.bootstrap, group, topic, **extra)
    poll_until([a, b, c], lambda: split_evenly([a, b, c], 6), "three members to split 6 partitions")
    produce(broker.bootstrap, topic, values[300:])
    a.c.close()  # leaves the group: its partitions move to b and c
    poll_until([b, c], lambda: split_evenly([b, c], 6), "two members to take over after a leave")
    members = [a, b, c]
    poll_until(
        [b, c],
        lambda: {v for m in members for (_, _, v) in m.seen} == set(values),
        "every record to be consumed",
    )
    # Each record came from a partition its consumer owned at some point,
    # and no offset of a partition holds two different values.
    by_position = {}
    for m in members:
        for p, o, v in m.seen:
            assert by_position.setdefault((p, o), v) == v
    b.c.close()
    c.c.close()


CHILD = """
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
              "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[3]], on_assign=lambda c, ps: print("assigned", len(ps), flush=True))
while True:
    c.poll(0.1)
"""


def test_a_sigkilled_member_s_partitions_move_after_its_session(broker):
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 4)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, broker.bootstrap, group, topic],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        a = Member(broker.bootstrap, group, topic)
        poll_until([a], lambda: len(a.partitions()) == 2, "the local member to own half")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(TIMEOUT_S)
    # No LeaveGroup was sent: the coordinator notices the missing
    # heartbeats after the 6 s session and gives every partition to `a`.
    poll_until([a], lambda: len(a.partitions()) == 4, "the dead member's partitions to move")
    values = [f"k{i}".encode() for i in range(100)]
    produce(broker.bootstrap, topic, values)
    poll_until([a], lambda: {v for (_, _, v) in a.seen} >= set(values), "every record")
    a.c.close()
    assert "expired" in broker.log()


def consume_exactly(bootstrap, group, topic, n):
    """Consumes `n` records with manual commits, commits them, closes."""
    c = consumer(bootstrap, group, **{"enable.auto.commit": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < n and time.monotonic() < deadline:
        for m in c.consume(n - len(got), 0.2):
            assert m.error() is None, m.error()
            got.append(m.value())
    assert len(got) == n, f"consumed {len(got)} of {n}"
    c.commit(asynchronous=False)
    c.close()
    return got


def committed(bootstrap, group, topic, partitions):
    c = consumer(bootstrap, group)
    tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=TIMEOUT_S)
    c.close()
    return {tp.partition: tp.offset for tp in tps}


def total(offsets):
    """Records consumed according to committed offsets (-1001: none)."""
    return sum(max(o, 0) for o in offsets.values())


def test_committed_offsets_resume_across_consumer_and_broker_restarts(make_broker):
    b = make_broker().start()
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    create(b.bootstrap, topic, 3)
    values = [f"r{i}".encode() for i in range(300)]
    produce(b.bootstrap, topic, values)

    first = consume_exactly(b.bootstrap, group, topic, 100)
    after_first = committed(b.bootstrap, group, topic, 3)
    assert total(after_first) == 100

    b.restart()  # SIGTERM, then start on the same data
    assert committed(b.bootstrap, group, topic, 3) == after_first
    second = consume_exactly(b.bootstrap, group, topic, 100)
    after_second = committed(b.bootstrap, group, topic, 3)

    assert b.stop(signal.SIGKILL) != 0
    b.start()
    assert committed(b.bootstrap, group, topic, 3) == after_second
    third = consume_exactly(b.bootstrap, group, topic, 100)
    # Exactly once across the three consumers: nothing skipped, nothing twice.
    assert sorted(first + second + third) == sorted(values)


def test_two_groups_each_read_every_record(broker):
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 4)
    values = [f"r{i}".encode() for i in range(200)]
    produce(broker.bootstrap, topic, values)
    for group in (f"g1-{uuid.uuid4().hex[:8]}", f"g2-{uuid.uuid4().hex[:8]}"):
        assert sorted(consume_exactly(broker.bootstrap, group, topic, 200)) == sorted(values)


def test_groups_are_listed_described_and_deleted(broker):
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p.produce(topic, value=b"x", partition=0)
    p.produce(topic, value=b"y", partition=1)
    assert p.flush(TIMEOUT_S) == 0
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    m = Member(broker.bootstrap, group, topic, **{"client.id": "describe-me"})
    poll_until([m], lambda: len(m.partitions()) == 2, "the member to own both partitions")
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    assert group in {g.group_id for g in listed.valid}
    desc = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(TIMEOUT_S)
    assert str(desc.state).endswith("STABLE")
    assert [mm.client_id for mm in desc.members] == ["describe-me"]
    assert {tp.partition for tp in desc.members[0].assignment.topic_partitions} == {0, 1}
    # A group with members cannot be deleted.
    with pytest.raises(Exception) as err:
        admin.delete_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(TIMEOUT_S)
    assert "NON_EMPTY_GROUP" in str(err.value)
    poll_until([m], lambda: len(m.seen) == 2, "both records")
    m.c.commit(asynchronous=False)
    m.c.close()
    assert committed(broker.bootstrap, group, topic, 2) == {0: 1, 1: 1}
    admin.delete_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(TIMEOUT_S)
    assert committed(broker.bootstrap, group, topic, 2) == {0: -1001, 1: -1001}


def test_kafka_python_group_round_trip_and_offset_delete(broker):
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition as KTP

    topic = f"grp-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 3)
    values = [f"r{i}".encode() for i in range(90)]
    produce(broker.bootstrap, topic, values)

    def read(n):
        c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          session_timeout_ms=6000, consumer_timeout_ms=10_000)
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < n and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=200, max_records=n - len(got)).values():
                got.extend(r.value for r in records)
        c.commit()
        offsets = {p: c.committed(KTP(topic, p)) for p in range(3)}
        c.close()
        return got, offsets

    got, offsets = read(90)
    assert sorted(got) == sorted(values)
    assert sum(offsets.values()) == 90
    # A new consumer of the group resumes at the end: nothing is re-read.
    produce(broker.bootstrap, topic, [b"late"])
    got, _ = read(1)
    assert got == [b"late"]

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        groups = admin.list_groups(states_filter=["Empty"])
        assert group in {g["group_id"] if isinstance(g, dict) else g[0] for g in groups}, groups
        listed = admin.list_group_offsets({group: None})[group]
        assert sum(o.offset for o in listed.values()) == 91
        # OffsetDelete: the group has no members now, so it is allowed.
        admin.delete_group_offsets(group, [KTP(topic, 0)])
        listed = admin.list_group_offsets({group: None})[group]
        assert KTP(topic, 0) not in listed and KTP(topic, 1) in listed
    finally:
        admin.close()


def test_kcat_balanced_consumer(broker):
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, [f"v{i}".encode() for i in range(20)])
    out = subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-G", f"g-{uuid.uuid4().hex[:8]}", "-o", "beginning",
         "-c", "20", "-f", "%s\\n", "-X", "session.timeout.ms=6000", topic],
        capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(f"v{i}" for i in range(20))


def test_a_stable_group_keeps_its_generation_across_a_broker_restart(make_broker):
    """The group's metadata record brings its members back after a
    restart: they go on heartbeating in the same generation, no rebalance."""
    b = make_broker().start()
    topic = f"grp-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    create(b.bootstrap, topic, 2)
    assigned = []
    c = consumer(b.bootstrap, group)
    c.subscribe([topic], on_assign=lambda _c, ps: assigned.append(len(ps)))
    member = Member.__new__(Member)
    member.c, member.seen = c, []
    poll_until([member], lambda: len(member.partitions()) == 2, "the member to own both partitions")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    before = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(TIMEOUT_S)
    assert str(before.state).endswith("STABLE")

    b.restart()
    produce(b.bootstrap, topic, [b"after-restart"])
    poll_until([member], lambda: b"after-restart" in [v for (_, _, v) in member.seen], "the new record")
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    after = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result(TIMEOUT_S)
    assert str(after.state).endswith("STABLE")
    assert [m.member_id for m in after.members] == [m.member_id for m in before.members]
    assert assigned == [2], "assigned once: no rebalance after the restart"
    c.close()
