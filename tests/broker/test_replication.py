"""Partition replication (issue 14): followers fetch their leader's
batches and store them as they are, the high watermark waits for every
ISR member, acks=all is acknowledged once the ISR holds a batch, and a
killed leader's acknowledged records are all on the leader elected from
the ISR. Real nodes on loopback; every wait is bounded."""

import glob
import os
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from conftest import wait_until
from test_cluster import FENCE_WAIT_S, TIMEOUT_S, create, make_cluster, metadata  # noqa: F401
from test_full_disk import small_fs  # noqa: F401


def partition_state(bootstrap, topic, partition=0):
    """(leader, replicas, isr) of a partition as a broker sees it; (None,
    [], []) while that broker does not know the partition yet (a topic
    created through another node reaches each one a moment apart)."""
    _, _, topics = metadata(bootstrap)
    return topics.get(topic, {}).get(partition, (None, [], []))


def produce_acked(bootstrap, topic, values, **conf):
    """Produces `values` to partition 0 with acks=all and an idempotent
    producer; returns {value: offset} of every acknowledged one."""
    acked, failed = {}, []

    def done(err, msg):
        if err is None:
            acked[msg.value().decode()] = msg.offset()
        else:
            failed.append((msg.value().decode(), err))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, **conf})
    for v in values:
        p.produce(topic, v.encode(), partition=0, on_delivery=done)
        p.poll(0)
    assert p.flush(TIMEOUT_S * 2) == 0, "undelivered records"
    return acked, failed


def read_all(bootstrap, topic, end):
    """{offset: value} of partition 0 from offset 0 up to `end`."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got = {}
    try:
        wait_until(lambda: read_some(c, got) >= end, TIMEOUT_S * 2, f"reading {topic} to {end}")
    finally:
        c.close()
    return got


def read_some(consumer, got):
    for m in consumer.consume(500, timeout=0.5):
        if m.error() is None:
            assert m.offset() not in got or got[m.offset()] == m.value().decode(), m.offset()
            got[m.offset()] = m.value().decode()
    return max(got, default=-1) + 1


def offsets_partition(group, partitions=50):
    """The `__consumer_offsets` partition of a group: Java's String.hashCode
    of its id, as Kafka places groups."""
    h = 0
    for ch in group:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def segment_bytes(node, topic, partition=0):
    """A partition's batches on a stopped node: its segments, in order."""
    files = sorted(glob.glob(os.path.join(node.data_dir, f"{topic}-{partition}", "*.log")))
    return b"".join(open(f, "rb").read() for f in files)


def test_followers_store_the_leaders_batches_and_join_the_isr(make_cluster):
    c = make_cluster(nodes=3).start()
    topic = f"rep-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})
    assert create(c.bootstraps(), [nt]) == {topic: None}
    # CreateTopics answers once the answering node has the topic; the broker
    # asked here may be another one, a moment behind.
    seen = []
    wait_until(lambda: seen.append(partition_state(c.bootstraps(), topic)) or seen[-1][1], TIMEOUT_S,
               f"{topic} in the metadata")
    leader, replicas, isr = seen[-1]
    assert sorted(replicas) == [1000, 2000, 3000] and sorted(isr) == sorted(replicas)
    acked, failed = produce_acked(c.bootstraps(), topic, [f"v{i}" for i in range(300)])
    assert failed == [] and sorted(acked.values()) == list(range(300))
    got = read_all(c.bootstraps(), topic, 300)
    assert {v: o for o, v in got.items()} == acked
    # Stopped cleanly, every replica holds the same bytes.
    assert set(c.stop().values()) == {0}, c.log()
    copies = {n.node_id: segment_bytes(n, topic) for n in c.nodes.values()}
    assert len(copies[1]) > 300 * 10
    assert copies[1] == copies[2] == copies[3], {n: len(b) for n, b in copies.items()}


def test_a_killed_leaders_acknowledged_records_are_all_on_the_next(make_cluster):
    c = make_cluster(nodes=3).start()
    topic = f"fail-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})
    assert create(c.bootstraps(), [nt]) == {topic: None}
    acked, failed = produce_acked(c.bootstraps(), topic, [f"a{i}" for i in range(200)])
    assert failed == []
    leader, _, _ = partition_state(c.bootstraps(), topic)
    victim = c.nodes[leader // 1000]
    victim.kill()

    def moved():
        state = partition_state(c.bootstraps(), topic)
        return state is not None and state[0] not in (-1, leader) and state
    wait_until(moved, FENCE_WAIT_S, "a new leader from the ISR")
    more, failed = produce_acked(c.bootstraps(), topic, [f"b{i}" for i in range(200)])
    assert failed == []
    acked.update(more)
    got = read_all(c.bootstraps(), topic, max(acked.values()) + 1)
    assert {v: o for o, v in got.items() if v in acked} == acked
    # The old leader comes back, catches up and joins the ISR again.
    victim.start()
    wait_until(lambda: sorted(partition_state(c.bootstraps(), topic)[2]) == [1000, 2000, 3000],
               FENCE_WAIT_S, "the old leader back in the ISR")
    assert set(c.stop().values()) == {0}, c.log()
    copies = {n.node_id: segment_bytes(n, topic) for n in c.nodes.values()}
    assert copies[1] == copies[2] == copies[3], {n: len(b) for n, b in copies.items()}


def test_committed_offsets_survive_a_coordinator_failover(make_cluster):
    """`__consumer_offsets` is replicated three times in a cluster of
    three: the group's coordinator killed, its partition's new leader
    loads the group from its replica, every committed offset is there and
    the group goes on from it."""
    c = make_cluster(nodes=3).start()
    topic, group = f"grp-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    assert create(c.bootstraps(), [NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})]) == {topic: None}
    _, _, topics = metadata(c.bootstraps())
    assert all(len(r) == 3 for _, r, _ in topics["__consumer_offsets"].values()), "offsets RF 3"
    acked, failed = produce_acked(c.bootstraps(), topic, [f"m{i}" for i in range(100)])
    assert failed == []

    def consumer():
        return Consumer({"bootstrap.servers": c.bootstraps(), "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000})

    first = consumer()
    first.subscribe([topic])
    got = []
    wait_until(lambda: len(got.extend(m.value().decode() for m in first.consume(100, timeout=0.5)
                                      if m.error() is None) or got) >= 60, TIMEOUT_S, "60 records")
    first.commit(offsets=[TopicPartition(topic, 0, 60)], asynchronous=False)
    first.close()
    coordinator, _, _ = partition_state(c.bootstraps(), "__consumer_offsets", offsets_partition(group))
    victim = c.nodes[coordinator // 1000]
    victim.kill()

    def committed():
        try:
            probe = consumer()
            try:
                return probe.committed([TopicPartition(topic, 0)], timeout=5)[0].offset
            finally:
                probe.close()
        except Exception:
            return None
    wait_until(lambda: committed() == 60, FENCE_WAIT_S + 30, "the commit, from the new coordinator")
    second = consumer()
    second.subscribe([topic])
    rest = []
    wait_until(lambda: len(rest.extend(m.value().decode() for m in second.consume(100, timeout=0.5)
                                       if m.error() is None) or rest) >= 40, TIMEOUT_S * 2, "the rest")
    second.close()
    assert rest == [f"m{i}" for i in range(60, 100)], "the group goes on from its commit"


def test_a_replica_whose_disk_is_full_leaves_the_isr_and_comes_back(small_fs, make_cluster):
    """Node 3's data directory is on a small file system that fills up:
    its follower cannot store the leader's batches, leaves the ISR once
    behind for replica.lag.time.max.ms (3 s here), and acks=all produces
    go on with the two others (min.insync.replicas 2); once space is back
    it catches up, joins again, and holds the same bytes."""
    from test_full_disk import MARGIN_BYTES, free_bytes

    c = make_cluster(nodes=3, extra_args=["--replica-lag-time-max-ms", "3000"])
    c.nodes[3].data_dir = str(small_fs / "node3")
    c.start()
    topic = f"disk-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, 1, replica_assignment=[[1000, 2000, 3000]], config={"min.insync.replicas": "2"})
    assert create(c.bootstraps(), [nt]) == {topic: None}
    acked, failed = produce_acked(c.bootstraps(), topic, [f"a{i}" for i in range(50)])
    assert failed == []
    filler = small_fs / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY)
    try:
        os.posix_fallocate(fd, 0, max(1, free_bytes(small_fs) - MARGIN_BYTES // 2))
        os.fsync(fd)
    finally:
        os.close(fd)
    assert free_bytes(small_fs) < MARGIN_BYTES
    big = "x" * 10_000
    more, failed = produce_acked(c.bootstraps(), topic, [f"b{i}-{big}" for i in range(200)])
    assert failed == [], failed[:3]
    acked.update(more)
    wait_until(lambda: sorted(partition_state(c.bootstraps(), topic)[2]) == [1000, 2000], 60,
               "the full replica out of the ISR")
    # Node 3 is a controller too: its metadata log takes the ISR change
    # and a topic of 64 partitions (more than a block of records) while
    # its produces are refused: the free-space margin is kept for it.
    meta = f"meta-{uuid.uuid4().hex[:6]}"
    assignment = [[1000 + 1000 * (p % 2)] for p in range(64)]
    assert create(c.bootstraps(), [NewTopic(meta, 64, replica_assignment=assignment)]) == {meta: None}
    wait_until(lambda: partition_state(c.nodes[3].bootstrap, meta, 63)[0] is not None, 60,
               "node 3 knowing the topic created while its disk is full")
    assert c.nodes[3].proc.poll() is None, "node 3 stopped:\n" + c.nodes[3].log()
    assert free_bytes(small_fs) < MARGIN_BYTES, "the disk was full throughout"
    os.unlink(filler)
    wait_until(lambda: sorted(partition_state(c.bootstraps(), topic)[2]) == [1000, 2000, 3000], 60,
               "the replica back in the ISR")
    got = read_all(c.bootstraps(), topic, 250)
    assert {v: o for o, v in got.items()} == acked
    assert set(c.stop().values()) == {0}, c.log()
    copies = {n.node_id: segment_bytes(n, topic) for n in c.nodes.values()}
    assert copies[1] == copies[2] == copies[3], {n: len(b) for n, b in copies.items()}
