"""Leader elections an operator asks for (ElectLeaders, KIP-460), through
librdkafka's admin API: a preferred election says why it has nothing to
do; an unclean one brings a partition whose every ISR member is down back
on a live replica outside the ISR, as Kafka's does (what only the ISR
held is then gone: the price the operator chose), as does a topic's own
`unclean.leader.election.enable=true` without asking, and the old ISR member,
back, truncates what only it held and follows. Successive elections leave
a follower with an epoch its new leader never saw: it truncates and follows
too. Real nodes on loopback; every wait is bounded."""

import signal
import uuid

from confluent_kafka import ElectionType, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_until
from test_cluster import FENCE_WAIT_S, TIMEOUT_S, create, make_cluster, metadata  # noqa: F401
from test_epochs import NONE, offset_for_leader_epoch
from test_replication import partition_state, produce_acked, read_all, segment_bytes


def elect(bootstrap, election, topic, partitions=(0,)):
    """{partition: error code (0: elected)} of `topic` in the answer to one
    ElectLeaders request; `partitions` None asks for every partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    asked = None if partitions is None else [TopicPartition(topic, p) for p in partitions]
    result = admin.elect_leaders(election, asked).result(timeout=TIMEOUT_S)
    return {tp.partition: 0 if error is None else error.code()
            for tp, error in result.items() if tp.topic == topic}


def test_unclean_election_brings_back_a_partition_whose_isr_is_down(make_cluster):
    # Nodes 1-3 hold the metadata quorum; the partition lives on nodes 3
    # and 4 only, so that both can be down while the quorum stays.
    c = make_cluster(nodes=4, voters=3).start()
    topic = f"el-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, 1, replica_assignment=[[3000, 4000]], config={"min.insync.replicas": "1"})
    # The same placement, but the topic allows unclean elections itself.
    auto = f"{topic}-auto"
    na = NewTopic(auto, 1, replica_assignment=[[3000, 4000]],
                  config={"min.insync.replicas": "1", "unclean.leader.election.enable": "true"})
    assert create(c.bootstraps(), [nt, na]) == {topic: None, auto: None}
    quorum = ",".join(c.nodes[n].bootstrap for n in (1, 2))
    assert elect(quorum, ElectionType.PREFERRED, topic, (0, 9)) == {
        0: KafkaError.ELECTION_NOT_NEEDED,
        9: KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
    before = [f"before-{i}" for i in range(50)]
    acked, failed = produce_acked(c.bootstraps(), topic, before)
    assert failed == [] and sorted(acked.values()) == list(range(50))
    for t in (topic, auto):
        wait_until(lambda: partition_state(quorum, t)[2] == [3000, 4000], TIMEOUT_S, "both in the ISR")

    # Node 4 down: node 3 alone in the ISR takes records node 4 lacks.
    c.nodes[4].kill()
    wait_until(lambda: partition_state(quorum, topic)[2] == [3000], FENCE_WAIT_S, "node 4 out of the ISR")
    only = [f"only-on-3-{i}" for i in range(20)]
    acked, failed = produce_acked(quorum, topic, only)
    assert failed == [] and len(acked) == 20
    # Node 3 down too: offline, and node 4 back does not change that (it
    # is not in the ISR: no unclean election unless asked).
    c.nodes[3].kill()
    wait_until(lambda: partition_state(quorum, topic)[0] == -1, FENCE_WAIT_S, "the partition offline")
    c.nodes[4].start()
    wait_until(lambda: 4000 in metadata(quorum)[0], FENCE_WAIT_S, "node 4 registered again")
    # The topic that allows it got node 4 as its leader, alone in the ISR,
    # as node 4 came back; the other one did not.
    wait_until(lambda: partition_state(quorum, auto)[:3:2] == (4000, [4000]), TIMEOUT_S,
               "an unclean election of the topic that allows them")
    assert partition_state(quorum, topic)[0] == -1
    assert elect(quorum, ElectionType.PREFERRED, topic) == {0: KafkaError.PREFERRED_LEADER_NOT_AVAILABLE}

    assert elect(quorum, ElectionType.UNCLEAN, topic) == {0: 0}
    wait_until(lambda: partition_state(quorum, topic)[:3:2] == (4000, [4000]), TIMEOUT_S, "node 4 leading")
    after = [f"after-{i}" for i in range(30)]
    acked, failed = produce_acked(quorum, topic, after)
    assert failed == [] and sorted(acked.values()) == list(range(50, 80)), "node 4's log goes on"

    # Node 3 back: it truncates what only it held, catches up, and (the
    # preferred replica, back in the ISR) leads again.
    c.nodes[3].start()
    wait_until(lambda: partition_state(quorum, topic)[:3:2] == (3000, [4000, 3000]), FENCE_WAIT_S,
               "node 3 back in the ISR and leading")
    # Asked for every partition, the answer names only those where an
    # election was needed: not this one, led by its preferred replica.
    assert elect(quorum, ElectionType.PREFERRED, topic, None) == {}
    got = read_all(quorum, topic, 80)
    assert [got[o] for o in range(80)] == before + after
    assert set(c.stop().values()) == {0}, c.log()
    assert segment_bytes(c.nodes[3], topic) == segment_bytes(c.nodes[4], topic)


def test_a_follower_with_an_epoch_its_leader_never_saw_truncates_and_joins(make_cluster):
    """Successive elections (KIP-101's case; a chaos run stalled on it):
    the leader stops, B leads at a new epoch and takes acks=1 records that
    C, paused, never fetches; B stops and C, still in the ISR, leads at the
    next epoch without a batch of B's. Back, B fetches with B's epoch as
    its last: C says where that epoch ends in its log (a leader's epoch
    starts at its log end when it leads, before any batch of it), B
    truncates what only it held and joins the ISR, and the replicas end
    byte-identical."""
    # Node 1 alone holds the metadata quorum, so that the partition's
    # nodes can stop or pause while it stays; fencing and the ISR lag are
    # long, so that a paused C stays in the ISR without racing a clock.
    slow = ["--broker-session-timeout-ms", "600000", "--replica-lag-time-max-ms", "600000"]
    c = make_cluster(nodes=4, voters=1, extra_args=slow).start()
    topic = f"ep-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, 1, replica_assignment=[[2000, 3000, 4000]], config={"min.insync.replicas": "1"})
    quorum = c.nodes[1].bootstrap
    assert create(quorum, [nt]) == {topic: None}
    wait_until(lambda: sorted(partition_state(quorum, topic)[2]) == [2000, 3000, 4000], TIMEOUT_S,
               "every replica in the ISR")
    acked, failed = produce_acked(quorum, topic, [f"all-{i}" for i in range(20)])
    assert failed == [] and sorted(acked.values()) == list(range(20))
    leader, _, isr = partition_state(quorum, topic)
    # A stopping leader's partitions go to their first live ISR member.
    b, paused = [x for x in isr if x != leader]
    nodes = {x: c.nodes[x // 1000] for x in (leader, b, paused)}
    nodes[paused].signal(signal.SIGSTOP)
    assert nodes[leader].stop() == 0
    wait_until(lambda: partition_state(quorum, topic)[0] == b, FENCE_WAIT_S, f"{b} leading")
    only_b, failed = produce_acked(quorum, topic, [f"one-{i}" for i in range(10)], acks="1",
                                   **{"enable.idempotence": False})
    assert failed == [] and sorted(only_b.values()) == list(range(20, 30))
    assert nodes[b].stop() == 0
    wait_until(lambda: partition_state(quorum, topic)[0] == paused, FENCE_WAIT_S, f"{paused} leading")
    nodes[paused].signal(signal.SIGCONT)
    # B's epoch ends, in the new leader's log, where that log ends.
    leading = nodes[paused].bootstrap
    wait_until(lambda: offset_for_leader_epoch(leading, topic, 0, 1) == (NONE, 0, 20), TIMEOUT_S,
               "the new leader answering for epoch 1")
    nodes[b].start()
    nodes[leader].start()
    wait_until(lambda: sorted(partition_state(quorum, topic)[2]) == [2000, 3000, 4000], FENCE_WAIT_S,
               "every replica back in the ISR")
    got = read_all(quorum, topic, 20)
    assert {v: o for o, v in got.items()} == acked, "the acks=all records, and only those"
    assert set(c.stop().values()) == {0}, c.log()
    copies = {x: segment_bytes(n, topic) for x, n in nodes.items()}
    assert copies[leader] == copies[b] == copies[paused], {x: len(v) for x, v in copies.items()}
