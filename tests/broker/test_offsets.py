"""ListOffsets (earliest, latest, by timestamp, max timestamp) and watermarks."""

import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

TIMEOUT_S = 30


def test_watermarks_and_offsets_by_timestamp(broker):
    topic = f"ts-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # kept alive until the result arrives
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": 1})
    base = 1_700_000_000_000
    for i in range(50):
        p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=base + i * 1000)
        p.flush(TIMEOUT_S)  # one batch per record: timestamps map to single offsets
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
    assert (low, high) == (0, 50)
    found = c.offsets_for_times([TopicPartition(topic, 0, base + 10_500)], timeout=TIMEOUT_S)
    assert found[0].offset == 11
    found = c.offsets_for_times([TopicPartition(topic, 0, base)], timeout=TIMEOUT_S)
    assert found[0].offset == 0
    found = c.offsets_for_times([TopicPartition(topic, 0, base + 10_000_000)], timeout=TIMEOUT_S)
    assert found[0].offset == -1  # no record at or after: the end (OFFSET_END)
    c.close()


def test_offsets_by_time_are_per_record_inside_a_compressed_batch(broker):
    """Kafka answers a record's offset, not its batch's: the first record
    at or after a time, and (KIP-734) the record with the largest
    timestamp, here in the middle of one gzip batch."""
    topic = f"ts-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5000,
                  "compression.type": "gzip"})
    base = 1_700_000_000_000
    for i, delta in enumerate([0, 10, 40, 20, 30]):
        p.produce(topic, value=f"v{i}".encode(), partition=0, timestamp=base + delta)
    assert p.flush(TIMEOUT_S) == 0
    tp = TopicPartition(topic, 0)
    got = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(TIMEOUT_S)
    assert (got.offset, got.timestamp) == (2, base + 40)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    assert c.offsets_for_times([TopicPartition(topic, 0, base + 15)], timeout=TIMEOUT_S)[0].offset == 2
    assert c.offsets_for_times([TopicPartition(topic, 0, base + 5)], timeout=TIMEOUT_S)[0].offset == 1
    # The records were one batch: the offsets above are not batch offsets.
    c.assign([TopicPartition(topic, 0, 0)])
    msgs = c.consume(5, timeout=TIMEOUT_S)
    assert [m.timestamp()[1] - base for m in msgs] == [0, 10, 40, 20, 30]
    c.close()


def test_log_append_time_topics_carry_the_brokers_clock(broker):
    """message.timestamp.type=LogAppendTime: the broker stamps each batch;
    the producer's delivery report and every consumer see its time, not
    the producer's (here a day old, which the topic would otherwise keep)."""
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
    topic = f"lat-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"message.timestamp.type": "LogAppendTime"})])[topic].result(
        TIMEOUT_S)
    old = int(time.time() * 1000) - 86_400_000
    reports = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 50})
    before = int(time.time() * 1000)
    for i in range(10):
        p.produce(topic, f"v{i}".encode(), partition=0, timestamp=old + i,
                  on_delivery=lambda err, m: reports.append((err, m.timestamp())))
    assert p.flush(TIMEOUT_S) == 0
    after = int(time.time() * 1000)
    assert all(err is None for err, _ in reports), reports
    assert all(kind == TIMESTAMP_LOG_APPEND_TIME and before <= ts <= after for _, (kind, ts) in reports), reports
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    for _ in range(40):
        got += [m for m in c.consume(10, timeout=0.5) if m.error() is None]
        if len(got) >= 10:
            break
    c.close()
    assert len(got) == 10
    assert all(m.timestamp()[0] == TIMESTAMP_LOG_APPEND_TIME and before <= m.timestamp()[1] <= after for m in got)


def test_long_poll_is_woken_by_an_append(broker):
    """A fetch waiting up to 30 s on an empty partition returns as soon as a
    record arrives: the test's own bound (20 s) is below the fetch's wait."""
    import time

    topic = f"poll-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(TIMEOUT_S)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "fetch.wait.max.ms": 30_000,
                  "fetch.min.bytes": 1, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    assert c.poll(1.0) is None  # the consumer is now parked in a long poll
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    p.produce(topic, value=b"wake up", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    deadline = time.monotonic() + 20
    msg = None
    while msg is None and time.monotonic() < deadline:
        msg = c.poll(0.5)
    c.close()
    assert msg is not None and msg.error() is None and msg.value() == b"wake up"


def test_fetch_past_the_end_is_offset_out_of_range(broker):
    from confluent_kafka import KafkaError

    topic = f"oor-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(5):
        p.produce(topic, value=b"x", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "auto.offset.reset": "error",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 1000)])
    import time
    deadline = time.monotonic() + TIMEOUT_S
    err = None
    while err is None and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is not None and msg.error():
            err = msg.error()
    c.close()
    assert err is not None and err.code() == KafkaError._AUTO_OFFSET_RESET, err
    assert "out of range" in err.str().lower()


def test_consume_from_latest_and_from_a_given_offset(broker):
    from confluent_kafka import OFFSET_END

    topic = f"pos-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(10):
        p.produce(topic, value=f"old{i}".encode(), partition=0)
    assert p.flush(TIMEOUT_S) == 0

    def consumer_at(offset):
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
        c.assign([TopicPartition(topic, 0, offset)])
        return c

    c = consumer_at(7)
    msg = c.poll(TIMEOUT_S)
    c.close()
    assert msg is not None and msg.error() is None
    assert (msg.offset(), msg.value()) == (7, b"old7")

    # From the end: whatever the consumer sees first is a record produced
    # after it was assigned, never one of the ten old ones. The producer
    # keeps adding records until one arrives, so there is no race on when
    # the consumer resolved "latest".
    c = consumer_at(OFFSET_END)
    msg = None
    for k in range(TIMEOUT_S * 2):
        p.produce(topic, value=f"new{k}".encode(), partition=0)
        assert p.flush(TIMEOUT_S) == 0
        msg = c.poll(0.5)
        if msg is not None:
            break
    c.close()
    assert msg is not None and msg.error() is None
    assert msg.value().startswith(b"new")
    assert msg.offset() == 10 + int(msg.value()[3:])
