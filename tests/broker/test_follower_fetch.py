"""Fetch from follower (KIP-392, rack = node): a consumer that names the
rack of a follower's node (librdkafka's `client.rack`) is sent to that
follower by the leader and reads everything from it, up to the high
watermark; a consumer without a rack reads from the leader. Real nodes,
real clients, the nodes' own metrics to tell who served; every wait is
bounded."""

import urllib.request
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port_range, wait_until
from test_cluster import TIMEOUT_S, create, make_cluster  # noqa: F401
from test_replication import partition_state, produce_acked


def bytes_out(port, topic):
    """Record bytes a node's consumers fetched of `topic`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT_S) as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "corelog_partition_bytes_out_total" and s.labels.get("topic") == topic)


def consume_all(bootstrap, topic, count, **conf):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ff-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", **conf})
    c.assign([TopicPartition(topic, 0, 0)])
    got = {}

    def more():
        for m in c.consume(500, timeout=0.5):
            if m.error() is None:
                got[m.offset()] = m.value().decode()
        return len(got) >= count

    try:
        wait_until(more, TIMEOUT_S * 2, f"reading {count} records of {topic}")
    finally:
        c.close()
    return [got[o] for o in sorted(got)]


def test_a_consumer_reads_from_the_follower_in_its_rack(make_cluster):
    c = make_cluster(nodes=3)
    metrics = {}
    for n in c.nodes.values():
        metrics[n.node_id] = free_port_range(1)
        n.extra_args += ["--metrics-port", str(metrics[n.node_id])]
    c.start()
    topic = f"ff-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, 1, replica_assignment=[[1000, 2000, 3000]], config={"min.insync.replicas": "3"})
    assert create(c.bootstraps(), [nt]) == {topic: None}
    wait_until(lambda: partition_state(c.bootstraps(), topic)[2] == [1000, 2000, 3000], TIMEOUT_S,
               "every replica in the ISR")
    values = [f"v{i}" for i in range(300)]
    acked, failed = produce_acked(c.bootstraps(), topic, values)
    assert failed == [] and len(acked) == 300

    # In node 3's rack: node 3's replica serves it, the leader none of it.
    assert consume_all(c.bootstraps(), topic, 300, **{"client.rack": "node-3"}) == values
    assert bytes_out(metrics[1], topic) == 0
    assert bytes_out(metrics[3], topic) > 0
    assert bytes_out(metrics[2], topic) == 0
    # No rack: the leader.
    assert consume_all(c.bootstraps(), topic, 300) == values
    assert bytes_out(metrics[1], topic) > 0
