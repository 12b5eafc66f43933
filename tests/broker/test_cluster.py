"""Clusters of real nodes on loopback (issue 13): a Raft metadata quorum
forms from the nodes' commands, every broker of every node serves the same
metadata, the active controller survives SIGKILL and SIGSTOP, and a node
that dies is fenced and comes back. Every wait is bounded."""

import signal
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster
from conftest import BINARY, error_codes, wait_until
from test_epochs import FENCED_LEADER_EPOCH, offset_for_leader_epoch, produce

TIMEOUT_S = 30
# The controller fences a node not heard from for 9 s (broker.session.timeout.ms).
FENCE_WAIT_S = 40


@pytest.fixture
def make_cluster(tmp_path):
    made = []

    def make(**kw):
        c = Cluster(tmp_path, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        print("---- cluster log ----\n" + c.log())
        c.kill_all()


def metadata(bootstrap):
    """(brokers, controller id, {topic: {partition: (leader, replicas, isrs)}}) as one broker sees them."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=TIMEOUT_S)
    topics = {
        name: {p: (pm.leader, list(pm.replicas), list(pm.isrs)) for p, pm in t.partitions.items()}
        for name, t in md.topics.items()
    }
    return sorted(md.brokers), md.controller_id, topics


def broker_views(cluster):
    """Metadata from every broker of every running node, each asked alone."""
    views = {}
    for n in cluster.running():
        for b in n.brokers():
            views[b] = metadata(f"127.0.0.1:{n.port + b % 1000}")
    return views


def create(bootstrap, topics, timeout_s=TIMEOUT_S):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return error_codes(admin.create_topics(topics, operation_timeout=timeout_s, request_timeout=timeout_s),
                       timeout_s)


def controller_node(cluster):
    _, controller, _ = metadata(cluster.bootstraps())
    return controller // 1000 if controller >= 0 else None


@pytest.mark.parametrize("shards", [1, 2])
def test_three_nodes_form_one_cluster(make_cluster, shards):
    c = make_cluster(nodes=3, shards=shards).start()
    every = sorted(b for n in c.nodes.values() for b in n.brokers())
    name = f"r3-{uuid.uuid4().hex[:6]}"
    assert create(c.nodes[1].bootstrap, [NewTopic(name, 6, 3)]) == {name: None}
    assert create(c.nodes[2].bootstrap, [NewTopic("too-many", 1, 4)]) == {
        "too-many": KafkaError.INVALID_REPLICATION_FACTOR
    }

    def agreed():
        views = broker_views(c)
        first = next(iter(views.values()))
        return all(v == first for v in views.values()) and name in first[2]

    wait_until(agreed, TIMEOUT_S, "every broker serving the same metadata")
    brokers, controller, topics = next(iter(broker_views(c).values()))
    assert brokers == every
    assert controller // 1000 in c.nodes and controller % 1000 == 0
    for leader, replicas, isrs in topics[name].values():
        assert len({r // 1000 for r in replicas}) == 3, replicas
        assert leader == replicas[0] and sorted(isrs) == sorted(replicas), (replicas, isrs)
    leaders = {leader // 1000 for leader, _, _ in topics[name].values()}
    assert leaders == {1, 2, 3}, "leaders spread over every node"
    # Real clients route to the leaders on every node.
    p = Producer({"bootstrap.servers": c.nodes[3].bootstrap})
    for i in range(60):
        p.produce(name, value=f"v{i}".encode(), partition=i % 6)
    assert p.flush(TIMEOUT_S) == 0
    consumer = Consumer({"bootstrap.servers": c.nodes[2].bootstrap, "group.id": "g",
                         "enable.partition.eof": True})
    consumer.assign([TopicPartition(name, part, 0) for part in range(6)])
    got, ended = set(), set()
    while len(ended) < 6:
        m = consumer.poll(TIMEOUT_S)
        assert m is not None
        if m.error():
            assert m.error().code() == KafkaError._PARTITION_EOF
            ended.add(m.partition())
        else:
            got.add(m.value().decode())
    consumer.close()
    assert got == {f"v{i}" for i in range(60)}
    kcat = subprocess.run(["kcat", "-L", "-b", c.nodes[1].bootstrap], capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=True).stdout
    assert all(f"broker {b} at" in kcat for b in every), kcat
    described = subprocess.run([BINARY, "cluster", "describe",
                                "--bootstrap", c.nodes[2].bootstrap],
                               capture_output=True, text=True, timeout=TIMEOUT_S, check=True).stdout
    quorum = described.split("Quorum: ")[1].splitlines()
    assert quorum[0].startswith(f"leader node {controller // 1000}, epoch "), described
    voters = [line.split() for line in quorum[2:]]
    assert [v[0] for v in voters] == ["1", "2", "3"], described
    assert all(v[-1].isdigit() for v in voters), described
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=c.nodes[3].bootstrap, request_timeout_ms=TIMEOUT_S * 1000)
    described = admin.describe_cluster()
    admin.close()
    assert sorted(b["broker_id"] for b in described["brokers"]) == every
    assert c.stop() == {1: 0, 2: 0, 3: 0}, c.log()


def topic_ids(bootstrap, names):
    from confluent_kafka import TopicCollection
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_topics(TopicCollection(sorted(names)), request_timeout=TIMEOUT_S)
    return {name: str(f.result(TIMEOUT_S).topic_id) for name, f in futures.items()}


def test_the_active_controller_is_killed_again_and_again(make_cluster):
    c = make_cluster(nodes=3, shards=1).start()
    created = {}
    for round in range(5):
        victim = controller_node(c)
        assert victim in c.nodes, victim
        c.nodes[victim].kill()
        name = f"after-kill-{round}"
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            # Metadata names the dead controller until a new one is
            # elected: short attempts, as a client's retries would be.
            try:
                outcome = create(c.bootstraps(), [NewTopic(name, 2, 1)], timeout_s=3)[name]
            except Exception as e:  # the attempt's own timeout
                outcome = e
            if outcome in (None, KafkaError.TOPIC_ALREADY_EXISTS):
                break
            assert time.monotonic() < deadline, f"no CreateTopics succeeded: {outcome}\n{c.log()}"
        ids = topic_ids(c.bootstraps(), [name])
        created[name] = ids[name]
        # Every topic created so far, with its id, on every running node.
        for n in c.running():
            assert topic_ids(n.bootstrap, created) == created, f"node {n.node_id}"
        c.nodes[victim].start()
        wait_until(lambda: set(created) <= set(metadata(c.nodes[victim].bootstrap)[2]), TIMEOUT_S,
                   f"restarted node {victim} catching up")
        assert topic_ids(c.nodes[victim].bootstrap, created) == created
    assert set(c.stop().values()) == {0}, c.log()


def test_a_stopped_controller_is_fenced_and_rejoins_as_a_follower(make_cluster):
    c = make_cluster(nodes=3, shards=1).start()
    victim = controller_node(c)
    others = [n for n in c.nodes.values() if n.node_id != victim]
    c.nodes[victim].signal(signal.SIGSTOP)
    others_bootstrap = ",".join(n.bootstrap for n in others)

    def moved_and_fenced():
        brokers, controller, _ = metadata(others_bootstrap)
        return controller // 1000 not in (victim, -1) and victim * 1000 not in brokers

    wait_until(moved_and_fenced, FENCE_WAIT_S, "a new controller, and the stopped one fenced")
    new_controller = metadata(others_bootstrap)[1] // 1000
    name = "while-stopped"
    assert create(others_bootstrap, [NewTopic(name, 1, 1)]) == {name: None}
    c.nodes[victim].signal(signal.SIGCONT)
    wait_until(lambda: victim * 1000 in metadata(others_bootstrap)[0], FENCE_WAIT_S,
               "the stopped node back in the cluster")
    wait_until(lambda: name in metadata(c.nodes[victim].bootstrap)[2], TIMEOUT_S,
               "the stopped node catching up")
    assert metadata(c.nodes[victim].bootstrap)[1] // 1000 == new_controller, "it rejoined as a follower"
    assert set(c.stop().values()) == {0}, c.log()


def test_a_killed_broker_node_is_fenced_and_registers_again(make_cluster):
    c = make_cluster(nodes=4, shards=1, voters=3).start()
    broker_only = c.nodes[4]
    name = "on-node-4"
    admin = AdminClient({"bootstrap.servers": c.bootstraps()})
    admin.create_topics([NewTopic(name, 1, replica_assignment=[[4000]])])[name].result(TIMEOUT_S)
    wait_until(lambda: metadata(c.nodes[1].bootstrap)[2].get(name, {}).get(0, (None,))[0] == 4000,
               TIMEOUT_S, "node 4 leading its partition")
    produce(c.bootstraps(), name, 3)
    assert offset_for_leader_epoch(broker_only.bootstrap, name, 0, 0) == (0, 0, 3)
    broker_only.kill()

    def fenced():
        brokers, _, topics = metadata(c.nodes[1].bootstrap)
        return 4000 not in brokers and topics[name][0][0] == -1

    wait_until(fenced, FENCE_WAIT_S, "node 4 fenced, its partition offline")
    broker_only.start()
    wait_until(lambda: metadata(c.nodes[2].bootstrap)[2][name][0][0] == 4000, TIMEOUT_S,
               "node 4 registered again and leading its partition")
    # Offline and back: two leader changes, epoch 2. Its batches say so,
    # and a client that knew epoch 0 is fenced.
    produce(c.bootstraps(), name, 2)
    assert offset_for_leader_epoch(broker_only.bootstrap, name, 0, 2) == (0, 2, 5)
    assert offset_for_leader_epoch(broker_only.bootstrap, name, 0, 1) == (0, 0, 3)
    assert offset_for_leader_epoch(broker_only.bootstrap, name, 0, 0, current=0)[0] == FENCED_LEADER_EPOCH
    consumed = subprocess.run(["kcat", "-C", "-b", c.bootstraps(), "-t", name, "-o", "beginning", "-e",
                               "-f", "%o:%s\\n"], capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=True).stdout.split()
    assert consumed == [f"{o}:r{o if o < 3 else o - 3}" for o in range(5)], consumed
    assert set(c.stop().values()) == {0}, c.log()


def test_a_voter_far_behind_catches_up_from_the_leaders_snapshot(make_cluster):
    # Snapshots every 10 entries: 40 commands while a voter is down leave
    # the leader's log starting past everything the voter has.
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
    c = make_cluster(nodes=3, shards=1, extra_args=["--metadata-snapshot-entries", "10"]).start()
    victim = next(n for n in c.nodes if n != controller_node(c))
    c.nodes[victim].kill()
    survivors = c.bootstraps()
    names = [f"snap-{i}" for i in range(4)]
    assert create(survivors, [NewTopic(n, 1, 1) for n in names]) == {n: None for n in names}
    admin = AdminClient({"bootstrap.servers": survivors})
    for i in range(40):
        entry = ConfigEntry("retention.ms", str(60_000 + i), incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource("topic", names[i % 4], incremental_configs=[entry])
        admin.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)
    ids = topic_ids(survivors, names)
    c.nodes[victim].start()
    wait_until(lambda: set(names) <= set(metadata(c.nodes[victim].bootstrap)[2]), TIMEOUT_S,
               f"node {victim} catching up")
    assert topic_ids(c.nodes[victim].bootstrap, names) == ids
    described = AdminClient({"bootstrap.servers": c.nodes[victim].bootstrap})
    resources = [ConfigResource("topic", n) for n in names]
    for r, f in described.describe_configs(resources).items():
        last = 60_000 + 36 + names.index(r.name)
        assert f.result(TIMEOUT_S)["retention.ms"].value == str(last), r
    # The node's metadata comes from the active controller directly; its
    # voter's Raft log catches up beside it.
    wait_until(lambda: f"controller {victim}: installed the leader's snapshot" in c.nodes[victim].log(),
               TIMEOUT_S, f"voter {victim} installing the leader's snapshot")
    # The victim now votes with the others: with another node stopped, the
    # quorum still commits.
    other = next(n for n in c.nodes if n not in (victim, controller_node(c)))
    c.nodes[other].stop()
    assert create(c.bootstraps(), [NewTopic("after-snapshot", 1, 1)]) == {"after-snapshot": None}
    assert set(c.stop().values()) == {0}, c.log()
