"""A real network partition (issue 13): one controller's node runs in its own
network namespace, joined to the others by a veth pair; taking the pair's
link down cuts it off. The majority keeps committing metadata, the minority
commits nothing, and once the link is back the cut-off node catches up with
exactly the majority's records. Needs root (`ip netns`), as CI runs."""

import json
import os
import subprocess
import sys
import time

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

from test_cluster import TIMEOUT_S, create, make_cluster, metadata, topic_ids  # noqa: F401
from conftest import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# The minority's node forwards a command for up to 30 s (its
# COMMAND_TIMEOUT) before it answers that no controller took it.
MINORITY_ANSWER_S = 90


def ip(*args, netns=None):
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run(prefix + ["ip", *args], check=True, timeout=TIMEOUT_S, capture_output=True)


@pytest.fixture
def netns():
    """A namespace joined to this one by a veth pair: (name, the address on
    this side, the address inside, the inside end of the link)."""
    tag = os.getpid() % 10000
    name, outer, inner = f"corelog-{tag}", f"clo{tag}", f"cli{tag}"
    subnet = f"10.{200 + tag % 50}.{tag % 250}"
    ip("netns", "add", name)
    try:
        ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", name)
        ip("addr", "add", f"{subnet}.1/24", "dev", outer)
        ip("link", "set", outer, "up")
        ip("addr", "add", f"{subnet}.2/24", "dev", inner, netns=name)
        ip("link", "set", inner, "up", netns=name)
        ip("link", "set", "lo", "up", netns=name)
        yield name, f"{subnet}.1", f"{subnet}.2", inner
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=TIMEOUT_S)
        subprocess.run(["ip", "link", "del", outer], timeout=TIMEOUT_S, capture_output=True)


# Run inside the namespace, printing JSON: the error code of a CreateTopics
# v2 of one topic sent to the broker itself (a client would send it to the
# controller Metadata names, which the cut may have put out of reach), or
# the topics the broker lists.
INSIDE = """
import json, socket, struct, sys
sys.path.insert(0, sys.argv[5])
from confluent_kafka.admin import AdminClient
from test_bad_input import recv_frame, request
what, bootstrap, name, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
if what == "create":
    topic = struct.pack(">h", len(name)) + name.encode() + struct.pack(">ihii", 1, 1, 0, 0)
    body = struct.pack(">i", 1) + topic + struct.pack(">ib", int(timeout * 1000), 0)
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.sendall(request(19, 2, 7, body))
    frame = recv_frame(s)
    correlation, _throttle, topics, length = struct.unpack(">iiih", frame[:14])
    assert (correlation, topics, frame[14:14 + length].decode()) == (7, 1, name), frame
    print(json.dumps(struct.unpack(">h", frame[14 + length:16 + length])[0]))
else:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    print(json.dumps(sorted(admin.list_topics(timeout=timeout).topics)))
"""


def inside(netns, *args):
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", INSIDE, *map(str, args), here],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def outcome(proc, timeout_s):
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err
    return json.loads(out)


def test_the_minority_cannot_commit_and_catches_up_after_the_partition(make_cluster, netns):
    ns, outer_ip, inner_ip, inner_link = netns
    c = make_cluster(nodes=3, shards=1, hosts={1: outer_ip, 2: outer_ip, 3: inner_ip},
                     netns={3: ns}).start()
    cut_off, majority = c.nodes[3], f"{c.nodes[1].bootstrap},{c.nodes[2].bootstrap}"
    assert create(c.nodes[3].bootstrap, [NewTopic("before", 1, 1)]) == {"before": None}
    wait_until(lambda: "before" in metadata(majority)[2], TIMEOUT_S, "the majority seeing the topic")

    ip("link", "set", inner_link, "down", netns=ns)
    # The cut-off node's broker is asked from inside its namespace.
    minority = inside(ns, "create", cut_off.bootstrap, "minority", MINORITY_ANSWER_S)
    deadline = time.monotonic() + 60
    while True:
        # If the cut-off node was the active controller, the majority
        # elects another first: short attempts, as a client's retries.
        try:
            result = create(majority, [NewTopic("during", 2, 1)], timeout_s=3)["during"]
        except Exception as e:  # the attempt's own timeout
            result = e
        if result in (None, KafkaError.TOPIC_ALREADY_EXISTS):
            break
        assert time.monotonic() < deadline, f"the majority committed nothing: {result}\n{c.log()}"
    refused = outcome(minority, MINORITY_ANSWER_S + 30)
    assert refused == KafkaError.NOT_CONTROLLER, refused
    seen_inside = outcome(inside(ns, "topics", cut_off.bootstrap, "-", TIMEOUT_S), TIMEOUT_S + 30)
    assert "during" not in seen_inside and "minority" not in seen_inside, seen_inside
    assert metadata(majority)[1] // 1000 in (1, 2), "the majority's controller is active"

    ip("link", "set", inner_link, "up", netns=ns)
    wait_until(lambda: "during" in metadata(cut_off.bootstrap)[2], TIMEOUT_S,
               "the cut-off node catching up")
    names = ["before", "during"]
    ids = topic_ids(majority, names)
    for n in c.nodes.values():
        topics = metadata(n.bootstrap)[2]
        assert "minority" not in topics, f"node {n.node_id} has the minority's topic"
        assert topic_ids(n.bootstrap, names) == ids, f"node {n.node_id}"
    assert set(c.stop().values()) == {0}, c.log()


# Run inside the namespace: acks=all produces of `count` records to the
# partition's leader there; prints how many were acknowledged.
PRODUCE_INSIDE = """
import json, sys
from confluent_kafka import Producer
bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
acked = []
p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
              "retries": 0, "request.timeout.ms": 5000, "message.timeout.ms": 20000})
for i in range(count):
    p.produce(topic, f"cut-{i}".encode(), partition=0,
              on_delivery=lambda err, msg: acked.append(err is None))
left = p.flush(60)
print(json.dumps({"acked": sum(acked), "answered": len(acked), "left": left}))
"""


def test_a_cut_off_leader_never_acknowledges_and_truncates_after_healing(make_cluster, netns):
    from test_replication import partition_state, produce_acked, read_all, segment_bytes

    ns, outer_ip, inner_ip, inner_link = netns
    c = make_cluster(nodes=3, shards=1, hosts={1: outer_ip, 2: outer_ip, 3: inner_ip},
                     netns={3: ns}).start()
    majority = f"{c.nodes[1].bootstrap},{c.nodes[2].bootstrap}"
    topic = "cut"
    nt = NewTopic(topic, 1, replica_assignment=[[3000, 1000, 2000]], config={"min.insync.replicas": "2"})
    assert create(majority, [nt]) == {topic: None}
    acked, failed = produce_acked(majority, topic, [f"before-{i}" for i in range(50)])
    assert failed == [] and partition_state(majority, topic)[0] == 3000

    ip("link", "set", inner_link, "down", netns=ns)
    here = os.path.dirname(os.path.abspath(__file__))
    inside_producer = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", PRODUCE_INSIDE, c.nodes[3].bootstrap, topic, "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=here)
    wait_until(lambda: (partition_state(majority, topic) or (-1,))[0] in (1000, 2000), 60,
               "the majority electing a leader from the ISR")
    more, failed = produce_acked(majority, topic, [f"after-{i}" for i in range(50)])
    assert failed == []
    acked.update(more)
    cut = outcome(inside_producer, 120)
    assert cut["acked"] == 0 and cut["left"] == 0, cut

    ip("link", "set", inner_link, "up", netns=ns)
    wait_until(lambda: sorted(partition_state(majority, topic)[2]) == [1000, 2000, 3000], 90,
               "the old leader following again, back in the ISR")
    got = read_all(majority, topic, max(acked.values()) + 1)
    assert {v: o for o, v in got.items()} == acked, "exactly the acknowledged records"
    assert set(c.stop().values()) == {0}, c.log()
    copies = {n.node_id: segment_bytes(n, topic) for n in c.nodes.values()}
    assert copies[1] == copies[2] == copies[3], {n: len(b) for n, b in copies.items()}
    assert "diverged from the leader: truncated" in c.nodes[3].log()
