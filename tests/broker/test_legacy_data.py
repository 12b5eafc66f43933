"""A data directory written before nodes were registered in the metadata
log (fixtures/legacy-single-node.tar.gz, made by the broker of commit
2bed264 with fixtures/make_legacy_single_node.py) opens with today's
broker: its topics keep their partitions on the same shards, their
records and the group's committed offsets are all there, and the node
is registered from then on."""

import os
import subprocess
import tarfile

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from conftest import BINARY, Broker, free_port_range

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "legacy-single-node.tar.gz")
TIMEOUT_S = 30


def legacy_broker(tmp_path, node_id="5"):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return Broker(tmp_path / "data", shards=2, extra_args=["--node-id", node_id])


def read_all(bootstrap, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition("legacy", p, 0) for p in range(partitions)])
    values, ended = [], set()
    while len(ended) < partitions:
        m = c.poll(TIMEOUT_S)
        assert m is not None, "no message or end of partition within the timeout"
        if m.error():
            assert m.error().code() == KafkaError._PARTITION_EOF, m.error()
            ended.add(m.partition())
            continue
        values.append((m.partition(), m.offset(), m.value().decode()))
    c.close()
    return sorted(values)


def test_a_legacy_single_node_directory_opens_with_its_data_and_offsets(tmp_path):
    b = legacy_broker(tmp_path).start()
    try:
        expected = [(p, i, f"p{p}-{i}") for p in range(3) for i in range(10)]
        assert read_all(b.bootstrap, 3) == expected
        md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=TIMEOUT_S)
        assert sorted(md.brokers) == [5000, 5001]
        # The old broker placed the second topic from shard 1: "shards":[1,0,1].
        leaders = {p: t.leader for p, t in md.topics["legacy"].partitions.items()}
        assert leaders == {0: 5001, 1: 5000, 2: 5001}
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "legacy-group"})
        committed = c.committed([TopicPartition("legacy", p) for p in range(3)], timeout=TIMEOUT_S)
        assert [tp.offset for tp in committed] == [7, 7, 7]
        c.close()
        p = Producer({"bootstrap.servers": b.bootstrap})
        p.produce("legacy", value=b"new", partition=1)
        assert p.flush(TIMEOUT_S) == 0
        b.restart()
        assert read_all(b.bootstrap, 3) == sorted(expected + [(1, 10, "new")])
    finally:
        print("---- broker log ----\n" + b.log())
        if b.proc is not None:
            assert b.stop() == 0


def test_a_registered_directory_refuses_another_node_id(tmp_path):
    b = legacy_broker(tmp_path).start()
    assert b.stop() == 0, b.log()
    # Now node 5 is registered in the log: node 6 would find none of its
    # partitions, so it does not start.
    port = free_port_range(2)
    run = subprocess.run([BINARY, "serve", "--data-dir", str(tmp_path / "data"), "--port", str(port),
                          "--shards", "2", "--metrics-port", "0", "--node-id", "6"],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert run.returncode != 0
    assert "belongs to node 5; start with --node-id 5" in run.stderr, run.stderr
