"""Real clients against a real broker: librdkafka (confluent-kafka),
kafka-python and kcat produce and consume through every shard."""

import os
import subprocess
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30


def create_topic(bootstrap, name, partitions, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    futures[name].result(TIMEOUT_S)


def produce(bootstrap, topic, messages, **conf):
    """Produces (partition, key, value, headers, timestamp) tuples; returns
    the delivery reports (partition, offset) in order."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **conf})
    reports = []
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
        else:
            reports.append((msg.partition(), msg.offset()))

    for partition, key, value, headers, ts in messages:
        kwargs = {"key": key, "value": value, "headers": headers, "on_delivery": delivered}
        if partition is not None:
            kwargs["partition"] = partition
        if ts is not None:
            kwargs["timestamp"] = ts
        p.produce(topic, **kwargs)
        p.poll(0)
    assert p.flush(TIMEOUT_S) == 0, "messages left undelivered"
    assert not errors, errors
    return reports


def consume_all(bootstrap, topic, partitions, expected_count):
    """Reads every partition from the beginning until `expected_count`
    messages arrived (bounded by TIMEOUT_S)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []
    import time
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < expected_count and time.monotonic() < deadline:
        msg = c.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        got.append(msg)
    c.close()
    assert len(got) == expected_count, f"consumed {len(got)} of {expected_count}"
    return got


def test_metadata_lists_every_shard_as_a_broker(broker):
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert sorted(md.brokers) == [0, 1]
    assert sorted(b.port for b in md.brokers.values()) == [broker.port, broker.port + 1]
    assert md.controller_id == 0
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-L"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr
    assert "2 brokers" in out.stdout


def test_round_trip_preserves_keys_values_headers_and_timestamps(broker):
    topic = f"rt-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, 4)
    messages = []
    for i in range(2000):
        key = None if i % 10 == 0 else f"key-{i}".encode()
        value = b"" if i % 13 == 0 else f"value-{i}".encode() * (1 + i % 5)
        headers = [("h", f"{i}".encode()), ("empty", b"")] if i % 3 == 0 else None
        messages.append((i % 4, key, value, headers, 1_700_000_000_000 + i))
    reports = produce(broker.bootstrap, topic, messages)
    # Offsets are contiguous per partition.
    by_partition = {}
    for partition, offset in reports:
        by_partition.setdefault(partition, []).append(offset)
    for offsets in by_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))
    got = consume_all(broker.bootstrap, topic, 4, len(messages))
    sent = {(m[0], m[4]): m for m in messages}
    for msg in got:
        partition, key, value, headers, ts = sent[(msg.partition(), msg.timestamp()[1])]
        assert msg.key() == key
        assert (msg.value() or b"") == value
        assert (msg.headers() or None) == (headers or None)


CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def stored_codecs(broker, topic, partitions):
    """The compression codec of every batch stored on disk for `topic`."""
    import glob
    import struct

    codecs = set()
    for p in range(partitions):
        for path in glob.glob(os.path.join(broker.data_dir, f"{topic}-{p}", "*.log")):
            data = open(path, "rb").read()
            at = 0
            while at + 61 <= len(data):
                (length,) = struct.unpack(">i", data[at + 8: at + 12])
                if length < 49:
                    break  # the zero padding of the active segment's last block
                (attributes,) = struct.unpack(">h", data[at + 21: at + 23])
                codecs.add(attributes & 7)
                at += 12 + length
    return codecs


def test_every_compression_codec(broker):
    for codec, codec_id in CODECS.items():
        topic = f"codec-{codec}-{uuid.uuid4().hex[:6]}"
        create_topic(broker.bootstrap, topic, 2)
        messages = [(i % 2, f"k{i}".encode(), f"{codec}-{i}".encode() * 20, None, None) for i in range(500)]
        produce(broker.bootstrap, topic, messages, **{"compression.type": codec})
        got = consume_all(broker.bootstrap, topic, 2, len(messages))
        assert sorted(m.value() for m in got) == sorted(m[2] for m in messages)
        assert stored_codecs(broker, topic, 2) == {codec_id}, "stored as the client compressed it"


def test_kcat_compresses_too(broker):
    """librdkafka 2.0.2 (Debian's kcat) compresses only if ApiVersions
    reports Produce from v0 (docs/decisions.md #17); without that it sends
    every batch uncompressed, silently."""
    for codec, codec_id in CODECS.items():
        topic = f"kcat-{codec}-{uuid.uuid4().hex[:6]}"
        create_topic(broker.bootstrap, topic, 1)
        lines = "".join(f"{codec}-line-{i}\n" for i in range(100))
        # One batch of all 100 lines (a lone first line would go uncompressed:
        # librdkafka sends a batch plain when compressing does not shrink it).
        out = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-p", "0", "-z", codec,
                              "-X", "linger.ms=1000"],
                             input=lines, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert out.returncode == 0, out.stderr
        got = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                              "-f", "%s\n"], capture_output=True, text=True, timeout=TIMEOUT_S)
        assert got.stdout.split() == lines.split()
        assert codec_id in stored_codecs(broker, topic, 1), codec


def test_large_message(broker):
    topic = f"large-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, 1)
    value = bytes(range(256)) * (900 * 1024 // 256)
    produce(broker.bootstrap, topic, [(0, b"big", value, None, None)], **{"message.max.bytes": 1_000_000})
    got = consume_all(broker.bootstrap, topic, 1, 1)
    assert got[0].value() == value


def test_kafka_python_round_trip(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP

    topic = f"kp-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic, 3)
    # kafka-python 3 enables idempotence by default; InitProducerId is not
    # served yet (idempotent producers are their own issue).
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=False)
    futures = [producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 3) for i in range(300)]
    producer.flush(TIMEOUT_S)
    offsets = [f.get(TIMEOUT_S) for f in futures]
    assert all(md.offset >= 0 for md in offsets)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=10_000)
    consumer.assign([KTP(topic, p) for p in range(3)])
    consumer.seek_to_beginning()
    got = []
    for msg in consumer:
        got.append((msg.key, msg.value))
        if len(got) == 300:
            break
    consumer.close()
    assert sorted(got) == sorted((f"k{i}".encode(), f"v{i}".encode()) for i in range(300))


def test_kcat_produce_and_consume(broker):
    topic = f"kcat-{uuid.uuid4().hex[:8]}"
    lines = "".join(f"key{i}:value{i}\n" for i in range(100))
    p = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-K:"], input=lines, text=True,
                       capture_output=True, timeout=TIMEOUT_S)
    assert p.returncode == 0, p.stderr
    c = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k:%s@%o\n"],
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert c.returncode == 0, c.stderr
    assert c.stdout.splitlines() == [f"key{i}:value{i}@{i}" for i in range(100)]
