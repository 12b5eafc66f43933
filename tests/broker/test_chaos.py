"""Failures while idempotent acks=all producers and consumers run (issue
14): a partition leader SIGKILLed and restarted, paused past the session
timeout and resumed, the active controller killed, a leader bounced
cleanly; in a loop, its victims and faults drawn from a printed seed. The
checker (checker.py) then reads everything back: no acknowledged record
lost, none duplicated, no offset with two values, nothing read later gone;
and the replicas hold the same bytes.

CI runs CORELOG_CHAOS_ROUNDS (default 10) rounds; the longer run in
docs/BENCHMARKS.md sets it to 100. CORELOG_SEED replays a sequence."""

import os
import random
import signal
import time
import uuid

from confluent_kafka.admin import NewTopic

from checker import Checker
from conftest import wait_until
from test_cluster import FENCE_WAIT_S, controller_node, create, make_cluster, metadata  # noqa: F401
from test_replication import segment_bytes

PARTITIONS = 2
FAULTS = ("kill", "pause", "kill-controller", "bounce")


def states(bootstrap, topic):
    _, _, topics = metadata(bootstrap)
    return topics.get(topic, {})


def agreed(nodes, topic):
    """{partition: (leader, replicas, isr)} that every node of `nodes`
    reports, or None while they differ: a node just resumed answers from
    its image of before the pause until the next one reaches it."""
    views = [states(n.bootstrap, topic) for n in nodes]
    return views[0] if all(v == views[0] for v in views[1:]) else None


def test_no_acknowledged_record_is_lost_through_failures(make_cluster):
    rounds = int(os.environ.get("CORELOG_CHAOS_ROUNDS", "10"))
    seed = int(os.environ.get("CORELOG_SEED", str(random.randrange(1 << 32))))
    print(f"chaos: seed {seed}, {rounds} rounds (CORELOG_SEED={seed} replays it)")
    rng = random.Random(seed)
    c = make_cluster(nodes=3).start()
    topic = f"chaos-{uuid.uuid4().hex[:6]}"
    nt = NewTopic(topic, PARTITIONS, 3, config={"min.insync.replicas": "2"})
    assert create(c.bootstraps(), [nt]) == {topic: None}
    everyone = ",".join(n.bootstrap for n in c.nodes.values())
    checker = Checker(everyone, topic, PARTITIONS).start()
    checker.wait_acked_past(100, 60, "first acknowledgments")
    started = time.monotonic()
    for r in range(rounds):
        fault = FAULTS[r % len(FAULTS)] if r < len(FAULTS) else rng.choice(FAULTS)
        partition = rng.randrange(PARTITIONS)
        seen = []
        wait_until(lambda: seen.append(agreed(c.running(), topic)) or seen[-1], FENCE_WAIT_S,
                   f"round {r}: one view of {topic}")
        leader = seen[-1][partition][0]
        victim = c.nodes[leader // 1000]
        if fault == "kill-controller":
            victim = c.nodes[controller_node(c)]
        print(f"round {r}: {fault} node {victim.node_id} (partition {partition} led by {leader})")
        if fault == "pause":
            victim.signal(signal.SIGSTOP)
        elif fault == "bounce":
            victim.stop()
        else:
            victim.kill()
        acked = checker.acked_count()
        if fault != "kill-controller":
            def moved():
                s = agreed([n for n in c.running() if n is not victim], topic)
                return s is not None and partition in s and s[partition][0] not in (-1, leader)
            wait_until(moved, FENCE_WAIT_S, f"round {r}: a new leader of partition {partition}")
        checker.wait_acked_past(acked, FENCE_WAIT_S + 30, f"round {r}: acknowledgments after the fault")
        if fault == "pause":
            victim.signal(signal.SIGCONT)
        else:
            victim.start()

        def whole():
            s = agreed(c.running(), topic)
            return s is not None and all(len(s.get(p, (0, [], []))[2]) == 3 for p in range(PARTITIONS))
        wait_until(whole, FENCE_WAIT_S + 30, f"round {r}: every replica back in the ISR")
    chaos_s = time.monotonic() - started
    checker.stop()
    final, ends = checker.final_read()
    verdict = checker.verdict(final)
    print(f"chaos verdict after {rounds} rounds in {chaos_s:.0f} s: {verdict}")
    assert verdict["acknowledged"] > 0
    for bad in ("lost", "duplicated", "inconsistent", "vanished"):
        assert verdict[bad] == 0, verdict
    # Quiet now: the replicas converge to the same bytes.
    assert set(c.stop().values()) == {0}, c.log()
    for p in range(PARTITIONS):
        copies = {n.node_id: segment_bytes(n, topic, p) for n in c.nodes.values()}
        assert copies[1] == copies[2] == copies[3], (p, {n: len(b) for n, b in copies.items()})
