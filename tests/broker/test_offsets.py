"""ListOffsets (earliest, latest, by timestamp) and watermarks."""

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

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
