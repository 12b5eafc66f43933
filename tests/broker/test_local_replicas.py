"""Replicas of one partition on two shards of one node (placed by hand,
for a single host): they replicate over the shard channels, not over a
socket of the node's own; acks=all waits for both; each replica has its
own directory; a SIGKILL loses nothing acknowledged, and the copies end
byte-identical. A real node, real clients; every wait is bounded."""

import glob
import os
import signal
import subprocess
import uuid

from confluent_kafka.admin import NewTopic

from conftest import wait_until
from test_cluster import TIMEOUT_S, create
from test_replication import partition_state, produce_acked, read_all


def own_connections(broker):
    """TCP connections the node opened to one of its own shards' ports."""
    ports = {str(broker.port + s) for s in range(broker.shards)}
    out = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout
    mine = [line for line in out.splitlines() if f"pid={broker.proc.pid}," in line]
    return [line for line in mine if line.split()[4].rsplit(":", 1)[1] in ports]


def replica_bytes(data_dir, name):
    files = sorted(glob.glob(os.path.join(data_dir, name, "*.log")))
    assert files, name
    return b"".join(open(f, "rb").read() for f in files)


def test_replicas_on_two_shards_of_a_node_replicate_over_channels(make_broker):
    b = make_broker(shards=2).start()
    topic = f"local-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, 1, replica_assignment=[[0, 1]], config={"min.insync.replicas": "2"})
    assert create(b.bootstrap, [nt]) == {topic: None}
    assert partition_state(b.bootstrap, topic) == (0, [0, 1], [0, 1])
    first = [f"a-{i}" for i in range(200)]
    acked, failed = produce_acked(b.bootstrap, topic, first)
    assert failed == [] and sorted(acked.values()) == list(range(200))
    assert own_connections(b) == [], "replication between shards took a socket"

    # SIGKILL: everything acknowledged is back, on both replicas.
    b.stop(signal.SIGKILL)
    b.start()
    wait_until(lambda: partition_state(b.bootstrap, topic) == (0, [0, 1], [0, 1]), TIMEOUT_S,
               "both replicas in the ISR again")
    more = [f"b-{i}" for i in range(100)]
    acked, failed = produce_acked(b.bootstrap, topic, more)
    assert failed == [] and sorted(acked.values()) == list(range(200, 300))
    got = read_all(b.bootstrap, topic, 300)
    assert [got[o] for o in range(300)] == first + more
    assert b.stop() == 0, b.log()
    # The leader's replica has the partition's usual directory, the other
    # one of its own; the same batches in both.
    leader = replica_bytes(b.data_dir, f"{topic}-0")
    assert leader == replica_bytes(b.data_dir, f"{topic}-0@1")
    assert len(leader) > 0
