"""Topic administration through real clients: CreateTopics with its error
cases, auto-creation, and metadata that survives a restart."""

import uuid

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30


def create(bootstrap, topics, validate_only=False):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(topics, validate_only=validate_only, operation_timeout=TIMEOUT_S)
    outcome = {}
    for name, f in futures.items():
        try:
            f.result(TIMEOUT_S)
            outcome[name] = None
        except Exception as e:  # KafkaException carrying a KafkaError
            outcome[name] = e.args[0].code()
    return outcome


def topics(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S).topics


def test_create_topics_and_their_errors(broker):
    name = f"t-{uuid.uuid4().hex[:8]}"
    assert create(broker.bootstrap, [NewTopic(name, 6, 1, config={"retention.ms": "3600000"})]) == {name: None}
    md = topics(broker.bootstrap)[name]
    assert len(md.partitions) == 6
    # Partitions spread over both shards (brokers 0 and 1).
    assert {p.leader for p in md.partitions.values()} == {0, 1}
    assert create(broker.bootstrap, [NewTopic(name, 1, 1)]) == {name: KafkaError.TOPIC_ALREADY_EXISTS}
    assert create(broker.bootstrap, [NewTopic("bad name!", 1, 1)]) == {"bad name!": KafkaError.TOPIC_EXCEPTION}
    other = f"o-{uuid.uuid4().hex[:8]}"
    assert create(broker.bootstrap, [NewTopic(other, 1, 3)]) == {other: KafkaError.INVALID_REPLICATION_FACTOR}
    assert create(broker.bootstrap, [NewTopic(other, 0, 1)]) == {other: KafkaError.INVALID_PARTITIONS}
    assert create(broker.bootstrap, [NewTopic(other, 1, 1, config={"retention.ms": "soon"})]) == {
        other: KafkaError.INVALID_CONFIG
    }
    assert create(broker.bootstrap, [NewTopic(other, 1, 1, config={"no.such.config": "1"})]) == {
        other: KafkaError.INVALID_CONFIG
    }
    assert create(broker.bootstrap, [NewTopic(other, 2, 1)], validate_only=True) == {other: None}
    assert other not in topics(broker.bootstrap), "validate_only created the topic"


def test_topics_are_created_on_produce_and_survive_a_restart(broker):
    name = f"auto-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(name, b"hello")
    assert p.flush(TIMEOUT_S) == 0
    assert name in topics(broker.bootstrap)
    created = f"c-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, [NewTopic(created, 3, 1)])
    broker.restart()
    after = topics(broker.bootstrap)
    assert name in after and len(after[created].partitions) == 3


def test_auto_creation_can_be_disabled(make_broker):
    b = make_broker(extra_args=["--auto-create-topics", "false"]).start()
    name = f"none-{uuid.uuid4().hex[:8]}"
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(topic=name, timeout=TIMEOUT_S)
    assert md.topics[name].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert name not in topics(b.bootstrap)
    assert b.stop() == 0
