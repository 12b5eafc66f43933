"""DeleteRecords through librdkafka's admin client: the log start moves to
the offset asked, ListOffsets EARLIEST and consumers start there, a fetch
below it is out of range, it survives a SIGKILL, compacted topics refuse,
and in a cluster every replica follows before the answer (a new leader
after a kill starts at the same offset)."""

import signal
import uuid

import pytest
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from conftest import wait_until
from test_cluster import TIMEOUT_S, create, make_cluster  # noqa: F401
from test_replication import partition_state, produce_acked


def delete_records(bootstrap, topic, offset, partition=0):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, partition, offset)
    return admin.delete_records([tp], operation_timeout=TIMEOUT_S)[tp].result(TIMEOUT_S)


def earliest(bootstrap, topic, partition=0):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(topic, partition)
    return admin.list_offsets({tp: OffsetSpec.earliest()})[tp].result(TIMEOUT_S).offset


def first_read(bootstrap, topic, offset=None):
    """The first record a new consumer reads: from `offset`, or from the
    earliest offset; (offset, value), or the error it got."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "error", "enable.auto.commit": False})
    start = offset if offset is not None else earliest(bootstrap, topic)
    c.assign([TopicPartition(topic, 0, start)])
    try:
        for _ in range(100):
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                return m.error().code()
            return m.offset(), m.value().decode()
        raise AssertionError("nothing read")
    finally:
        c.close()


def produce(bootstrap, topic, n, batch_size=1):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                  "batch.num.messages": batch_size})
    for i in range(n):
        p.produce(topic, f"v{i}".encode(), partition=0)
        p.poll(0)
    assert p.flush(TIMEOUT_S) == 0


def test_deleted_records_are_gone_for_good(make_broker):
    b = make_broker(shards=1).start()
    topic = f"dr-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})  # alive until the result
    admin.create_topics([NewTopic(topic, 1, 1, config={"segment.bytes": "4096"})])[topic].result(TIMEOUT_S)
    produce(b.bootstrap, topic, 300, batch_size=10)
    assert delete_records(b.bootstrap, topic, 123).low_watermark == 123
    assert earliest(b.bootstrap, topic) == 123
    assert first_read(b.bootstrap, topic) == (123, "v123")
    # Offsets by time skip what is gone, within the batch holding 123 too.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused"})
    assert c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=TIMEOUT_S)[0].offset == 123
    c.close()
    # Below the start a consumer without a reset policy is told so.
    assert first_read(b.bootstrap, topic, 50) == KafkaError._AUTO_OFFSET_RESET
    # Never back, and never past the high watermark.
    assert delete_records(b.bootstrap, topic, 10).low_watermark == 123
    with pytest.raises(KafkaException) as e:
        delete_records(b.bootstrap, topic, 301)
    assert e.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    # A kill right after: still deleted.
    b.stop(signal.SIGKILL)
    b.start()
    assert earliest(b.bootstrap, topic) == 123
    assert first_read(b.bootstrap, topic) == (123, "v123")
    # OFFSET_END: everything up to the high watermark.
    assert delete_records(b.bootstrap, topic, OFFSET_END).low_watermark == 300
    assert earliest(b.bootstrap, topic) == 300


def test_compacted_topics_refuse(broker):
    topic = f"drc-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # alive until the result
    admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[topic].result(TIMEOUT_S)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic, b"v", key=b"k", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    with pytest.raises(KafkaException) as e:
        delete_records(broker.bootstrap, topic, 1)
    assert e.value.args[0].code() == KafkaError.POLICY_VIOLATION


def test_every_replica_follows_the_leaders_log_start(make_cluster):
    c = make_cluster(nodes=3).start()
    topic = f"drr-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})
    assert create(c.bootstraps(), [nt]) == {topic: None}
    acked, failed = produce_acked(c.bootstraps(), topic, [f"v{i}" for i in range(200)])
    assert failed == []
    assert delete_records(c.bootstraps(), topic, 150).low_watermark == 150
    leader, _, _ = partition_state(c.bootstraps(), topic)
    c.nodes[leader // 1000].kill()
    # The next leader (any other replica) starts where the old one did.
    wait_until(lambda: partition_state(c.bootstraps(), topic)[0] not in (None, -1, leader),
               TIMEOUT_S * 2, "a new leader")
    wait_until(lambda: earliest_or_none(c.bootstraps(), topic) == 150, TIMEOUT_S, "EARLIEST at 150")
    assert first_read(c.bootstraps(), topic) == (150, "v150")


def earliest_or_none(bootstrap, topic):
    try:
        return earliest(bootstrap, topic)
    except KafkaException:
        return None
