#!/usr/bin/env python3
"""Partition leader failover of a three-node cluster on loopback (issue 14).

    CORELOG_BIN=target/release/corelog python3 bench/leader_failover.py [KILLS] [WINDOW_S]

An idempotent acks=all producer (librdkafka, linger 1 ms) writes 100-byte
records to one partition, replication factor 3, min.insync.replicas 2,
throughout. Prints, from one run:
- failover: over KILLS (default 20) SIGKILLs of the partition's leader,
  the time from the kill to the first acknowledgment of a record produced
  after it; the killed node is restarted and back in the ISR before the
  next kill.
- throughput: acknowledged records/s over WINDOW_S (default 60) seconds
  with the leader killed every 10 s (restarted once another leads, and
  the next kill only once it is back in the ISR), against the same window
  with no kill, measured first in the same run (reference).
"""

import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "broker"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from cluster import Cluster  # noqa: E402

TOPIC = "failover"


class Load:
    """The producer thread: acknowledgment times of records, by the time
    each was produced."""

    def __init__(self, bootstrap):
        self.acks = []   # (produced at, acknowledged at)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, args=(bootstrap,), daemon=True)
        self.thread.start()

    def run(self, bootstrap):
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 1, "message.timeout.ms": 120000})
        value = b"x" * 100

        def done(err, msg, at):
            if err is None:
                with self.lock:
                    self.acks.append((at, time.monotonic()))

        while not self.stopping.is_set():
            at = time.monotonic()
            p.produce(TOPIC, value, partition=0, on_delivery=lambda e, m, at=at: done(e, m, at))
            p.poll(0)
            while len(p) > 5000 and not self.stopping.is_set():
                p.poll(0.01)
        p.flush(150)

    def first_ack_of_produced_after(self, t, timeout_s=120):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                later = [a for (at, a) in self.acks if at > t]
            if later:
                return min(later)
            time.sleep(0.01)
        raise RuntimeError("no acknowledgment after the kill")

    def acked_between(self, a, b):
        with self.lock:
            return sum(1 for (_, t) in self.acks if a <= t < b)


def leader(bootstrap):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(TOPIC, timeout=10)
    p = md.topics[TOPIC].partitions[0]
    return p.leader, sorted(p.isrs)


def wait(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main():
    kills = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    window = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as base:
        c = Cluster(base, nodes=3, shards=1).start()
        try:
            boot = c.bootstraps()
            admin = AdminClient({"bootstrap.servers": boot})
            admin.create_topics([NewTopic(TOPIC, 1, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
            wait(lambda: len(leader(boot)[1]) == 3, 60, "the topic")
            load = Load(",".join(n.bootstrap for n in c.nodes.values()))
            time.sleep(5)  # warm up (not a synchronisation: a measured window)
            t0 = time.monotonic()
            time.sleep(window)
            steady = load.acked_between(t0, t0 + window) / window

            failovers = []
            for k in range(kills):
                lead, _ = leader(boot)
                victim = c.nodes[lead // 1000]
                killed_at = time.monotonic()
                victim.kill()
                failovers.append(load.first_ack_of_produced_after(killed_at) - killed_at)
                victim.start()
                wait(lambda: len(leader(c.bootstraps())[1]) == 3, 120, "the ISR whole again")
                print(f"kill {k + 1}: {failovers[-1] * 1000:.0f} ms", flush=True)

            # Every 10 s: the leader killed; once another leads, restarted and
            # caught up (the ISR whole again) before the next kill.
            t0 = time.monotonic()
            while time.monotonic() < t0 + window:
                killed_at = time.monotonic()
                lead, _ = leader(c.bootstraps())
                victim = c.nodes[lead // 1000]
                victim.kill()
                wait(lambda: leader(c.bootstraps())[0] not in (-1, lead), 60, "a new leader")
                victim.start()
                wait(lambda: len(leader(c.bootstraps())[1]) == 3, 120, "the ISR whole again")
                time.sleep(max(0.0, killed_at + 10 - time.monotonic()))
            elapsed = time.monotonic() - t0
            chaotic = load.acked_between(t0, t0 + elapsed) / elapsed
            load.stopping.set()
            load.thread.join(200)
        finally:
            c.kill_all()
    ms = [f * 1000 for f in failovers]
    print(f"failover, SIGKILL of the leader to the next acks=all acknowledgment, n={len(ms)}: "
          f"p50 {pct(ms, 0.5):.0f} ms, p99 {pct(ms, 0.99):.0f} ms, max {max(ms):.0f} ms, "
          f"mean {statistics.mean(ms):.0f} ms")
    print(f"throughput: {steady:,.0f} records/s over {window:.0f} s steady (reference), "
          f"{chaotic:,.0f} records/s over {elapsed:.0f} s with the leader killed every 10 s "
          f"or once the last kill healed ({chaotic / steady:.2f}x)")


if __name__ == "__main__":
    main()
