"""Idempotent producers with real clients: librdkafka with
`enable.idempotence=true` and kafka-python's default producer (idempotent
since 2.1) write every record exactly once, in order. The duplicate,
gap and stale-epoch cases are checked at the protocol level in
tools/tests/idempotence.rs."""

import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 60


def create(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result arrives
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def read_all(bootstrap, topic, partitions, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < count and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.append((m.partition(), m.offset(), m.value()))
    # Nothing beyond `count` either: one more short poll must be empty.
    assert c.consume(1000, 1.0) == []
    c.close()
    return got


def test_librdkafka_idempotent_producer_writes_each_record_once_in_order(broker):
    topic = f"idem-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 4)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2})
    n = 20_000
    for i in range(n):
        p.produce(topic, value=str(i).encode(), partition=i % 4)
    assert p.flush(TIMEOUT_S) == 0
    got = read_all(broker.bootstrap, topic, 4, n)
    assert len(got) == n
    for part in range(4):
        mine = [(o, int(v)) for (q, o, v) in got if q == part]
        assert [o for o, _ in mine] == list(range(len(mine))), "contiguous offsets"
        assert [v for _, v in mine] == list(range(part, n, 4)), "every record once, in order"


def test_kafka_python_default_producer_is_idempotent_and_works(broker):
    from kafka import KafkaProducer

    topic = f"idem-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    for i in range(1000):
        p.send(topic, value=str(i).encode(), partition=0)
    p.flush(TIMEOUT_S)
    p.close()
    got = read_all(broker.bootstrap, topic, 1, 1000)
    assert [int(v) for (_, _, v) in got] == list(range(1000))
    assert [o for (_, o, _) in got] == list(range(1000))
