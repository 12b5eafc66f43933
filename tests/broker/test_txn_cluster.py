"""Transactions on a cluster of three nodes: markers travel between nodes
(WriteTxnMarkers over TCP), `__transaction_state` is replicated, and when
the transaction coordinator's node is killed mid-transaction the
partition's next leader takes over the transactional id: a new producer
instance aborts the open transaction there, and read_committed readers
see every committed record and none of the aborted ones."""

import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from test_cluster import FENCE_WAIT_S, TIMEOUT_S, create, make_cluster, metadata  # noqa: F401
from test_replication import offsets_partition, partition_state
from test_transactions import read_all


def txn_producer(bootstrap, tid):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 1,
                  "transaction.timeout.ms": 60_000})
    p.init_transactions(FENCE_WAIT_S + TIMEOUT_S)
    return p


def test_a_transaction_survives_its_coordinators_node_being_killed(make_cluster):
    c = make_cluster(nodes=3).start()
    topic = f"txc-{uuid.uuid4().hex[:6]}"
    spec = NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})
    assert create(c.bootstraps(), [spec]) == {topic: None}
    tid = f"tid-{topic}"
    p = txn_producer(c.bootstraps(), tid)
    _, _, topics = metadata(c.bootstraps())
    assert all(len(r) == 3 for _, r, _ in topics["__transaction_state"].values()), "RF 3"
    leaders = {topics[topic][q][0] // 1000 for q in range(3)}
    assert len(leaders) > 1, "markers go to other nodes"

    p.begin_transaction()
    for i in range(9):
        p.produce(topic, value=f"one-{i}", partition=i % 3)
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    for i in range(9):
        p.produce(topic, value=f"open-{i}", partition=i % 3)
    p.flush(TIMEOUT_S)

    coordinator, _, _ = partition_state(c.bootstraps(), "__transaction_state", offsets_partition(tid))
    victim = c.nodes[coordinator // 1000]
    victim.kill()
    bootstrap = ",".join(n.bootstrap for n in c.nodes.values() if n is not victim)
    again = txn_producer(bootstrap, tid)
    again.begin_transaction()
    for i in range(9):
        again.produce(topic, value=f"two-{i}", partition=i % 3)
    again.commit_transaction(FENCE_WAIT_S + TIMEOUT_S)

    expected = sorted([f"one-{i}" for i in range(9)] + [f"two-{i}" for i in range(9)])
    read_all(bootstrap, topic, 3, "read_committed", expected)
    read_all(bootstrap, topic, 3, "read_uncommitted", sorted(expected + [f"open-{i}" for i in range(9)]))
