#!/usr/bin/env python3
"""Failover and idle cost of a three-node cluster on loopback (issue 13).

    CORELOG_BIN=target/release/corelog python3 bench/failover.py [KILLS] [TOPICS]

Prints, from one run:
- failover: time from SIGKILL of the active controller until Metadata
  from the survivors (polled every 20 ms) names a live controller, and
  until a CreateTopics through it succeeds, over KILLS kills (default 20);
  the killed node is restarted and caught up before the next kill. Then
  the same for a clean stop (SIGTERM: the node unregisters and its
  controller hands leadership over), max(5, KILLS/4) times. Reference, same run: a CreateTopics
  with every node up.
- propagation: time from a CreateTopics answered by node 1 until Metadata
  from every broker of every node lists the topic, polled every 5 ms, over
  TOPICS topics (default 50).
- idle: resident memory and CPU of each node over 20 s with no client.
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "broker"))

from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import Cluster  # noqa: E402


def create(bootstrap, name, timeout_s):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    f = admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=timeout_s,
                            request_timeout=timeout_s)[name]
    try:
        f.result(timeout_s)
        return True
    except Exception:
        return False


def lists(bootstrap, name):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
    return md, name in md.topics


def active_controller(c):
    """The leader of the metadata quorum as the controllers report it
    (DescribeQuorum through `corelog cluster describe`), once every running
    node's Metadata names it too: Metadata alone may still name the last one."""
    binary = os.environ.get("CORELOG_BIN", "target/debug/corelog")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run([binary, "cluster", "describe", "--bootstrap", c.bootstraps().split(",")[0]],
                             capture_output=True, text=True, timeout=30).stdout
        line = next((l for l in out.splitlines() if l.startswith("Quorum: leader node ")), None)
        if line:
            leader = int(line.split()[3].rstrip(","))
            if all(lists(n.bootstrap, "none")[0].controller_id // 1000 == leader for n in c.running()):
                return leader
        time.sleep(0.05)
    raise AssertionError("the nodes do not agree on an active controller")


def wait_for_new_controller(survivors, victim, t0):
    """Polls Metadata from the survivors every 20 ms until it names a
    controller on another node than `victim`."""
    while True:
        controller = lists(survivors, "none")[0].controller_id
        if controller >= 0 and controller // 1000 != victim.node_id:
            return
        assert time.monotonic() - t0 < 60, "no new controller within 60 s"
        time.sleep(0.02)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(label, xs):
    print(f"{label}: n={len(xs)} p50={pct(xs, 50) * 1000:.0f} ms p99={pct(xs, 99) * 1000:.0f} ms "
          f"min={min(xs) * 1000:.0f} ms max={max(xs) * 1000:.0f} ms mean={statistics.mean(xs) * 1000:.0f} ms")


def rss_and_cpu(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return rss, ticks / os.sysconf("SC_CLK_TCK")


def main():
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    topics = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(tmp, nodes=3, shards=2).start()
        try:
            steady = []
            for i in range(topics):
                t0 = time.monotonic()
                assert create(c.bootstraps(), f"steady-{i}", 10)
                steady.append(time.monotonic() - t0)
            propagation = []
            everyone = [f"127.0.0.1:{n.port + s}" for n in c.nodes.values() for s in range(n.shards)]
            for i in range(topics):
                name = f"spread-{i}"
                assert create(c.nodes[1].bootstrap, name, 10)
                t0 = time.monotonic()
                pending = set(everyone)
                while pending:
                    pending = {b for b in pending if not lists(b, name)[1]}
                    if pending:
                        time.sleep(0.005)
                propagation.append(time.monotonic() - t0)
            time.sleep(2)
            before = {n.node_id: rss_and_cpu(n.proc.pid) for n in c.running()}
            time.sleep(20)
            after = {n.node_id: rss_and_cpu(n.proc.pid) for n in c.running()}
            failover, elected = [], []
            for k in range(kills):
                victim = c.nodes[active_controller(c)]
                t0 = time.monotonic()
                victim.kill()
                survivors = c.bootstraps()
                # Then CreateTopics through the new controller.
                wait_for_new_controller(survivors, victim, t0)
                elected.append(time.monotonic() - t0)
                name = f"after-kill-{k}"
                while not create(survivors, name, 2):
                    assert time.monotonic() - t0 < 60, "no CreateTopics within 60 s"
                failover.append(time.monotonic() - t0)
                victim.start()
                while not lists(victim.bootstrap, name)[1]:
                    time.sleep(0.05)
            handed = []
            for k in range(max(5, kills // 4)):
                victim = c.nodes[active_controller(c)]
                t0 = time.monotonic()
                victim.signal(signal.SIGTERM)
                survivors = ",".join(n.bootstrap for n in c.running() if n is not victim)
                wait_for_new_controller(survivors, victim, t0)
                handed.append(time.monotonic() - t0)
                assert victim.proc.wait(60) == 0
                victim.proc = None
                victim.start()
            summary("CreateTopics, every node up (reference)", steady)
            summary("propagation, commit to every broker's Metadata", propagation)
            summary("failover, SIGKILL of the active controller to a new one in Metadata", elected)
            summary("failover, SIGKILL of the active controller to the next CreateTopics", failover)
            summary("clean stop (SIGTERM) of the active controller's node to a new one in Metadata", handed)
            for n, (rss0, cpu0) in before.items():
                rss1, cpu1 = after[n]
                print(f"idle node {n}: RSS {rss1 / 1024:.1f} MiB, CPU {100 * (cpu1 - cpu0) / 20:.2f}% of a core over 20 s")
            print(f"failover p50 / reference p50: {pct(failover, 50) / pct(steady, 50):.1f}x")
        finally:
            c.kill_all()


if __name__ == "__main__":
    main()
