"""Leader epochs (KIP-101, KIP-320): every batch carries the epoch of the
leader that appended it, OffsetForLeaderEpoch answers where an epoch ends,
and requests naming another epoch than the partition's are refused with
FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH. The epoch changing with the
leader is tested with a cluster in test_cluster.py."""

import socket
import struct
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from test_bad_input import recv_frame, request

TIMEOUT_S = 30
NONE, UNKNOWN_TOPIC_OR_PARTITION, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH = 0, 3, 74, 75


def string(s):
    return struct.pack(">h", len(s)) + s.encode()


def leader_of(bootstrap, topic, partition):
    """`host:port` of the broker leading a partition."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=TIMEOUT_S)
    leader = md.brokers[md.topics[topic].partitions[partition].leader]
    return f"{leader.host}:{leader.port}"


def offset_for_leader_epoch(bootstrap, topic, partition, epoch, current=-1, version=2):
    """(error code, leader epoch, end offset) from the broker at
    `bootstrap`, OffsetForLeaderEpoch v2-v3."""
    body = struct.pack(">i", -1) if version >= 3 else b""  # replica_id: a consumer
    body += struct.pack(">i", 1) + string(topic) + struct.pack(">iiii", 1, partition, current, epoch)
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as s:
        s.sendall(request(23, version, 9, body))
        frame = recv_frame(s)
    correlation, _throttle, topics, length = struct.unpack(">iiih", frame[:14])
    assert (correlation, topics, frame[14:14 + length].decode()) == (9, 1, topic), frame
    at = 14 + length
    count, code, index, leader_epoch, end = struct.unpack(">ihiiq", frame[at:at + 22])
    assert (count, index) == (1, partition), frame
    return code, leader_epoch, end


def produce(bootstrap, topic, n):
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(n):
        p.produce(topic, f"r{i}".encode(), partition=0)
    assert p.flush(TIMEOUT_S) == 0


def test_offset_for_leader_epoch_on_a_single_node(broker):
    topic = f"epochs-{uuid.uuid4().hex[:6]}"
    produce(broker.bootstrap, topic, 5)
    leader = leader_of(broker.bootstrap, topic, 0)
    for version in (2, 3):
        assert offset_for_leader_epoch(leader, topic, 0, 0, version=version) == (NONE, 0, 5)
    # A newer epoch than any in the log: undefined, as Kafka answers.
    assert offset_for_leader_epoch(leader, topic, 0, 3) == (NONE, -1, -1)
    assert offset_for_leader_epoch(leader, topic, 0, 0, current=0) == (NONE, 0, 5)
    assert offset_for_leader_epoch(leader, topic, 0, 0, current=1)[0] == UNKNOWN_LEADER_EPOCH
    assert offset_for_leader_epoch(leader, topic, 7, 0)[0] == UNKNOWN_TOPIC_OR_PARTITION
    # The epochs come back after a restart.
    broker.restart()
    assert offset_for_leader_epoch(leader, topic, 0, 0) == (NONE, 0, 5)
