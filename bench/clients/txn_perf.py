#!/usr/bin/env python3
"""Transactions through librdkafka (confluent-kafka): produce throughput
and per-transaction latency of transactional producers (transactions of
100 and of 10,000 records) against an idempotent producer flushing groups
of the same sizes, all in one run against one broker, in alternating
rounds; then read_committed against read_uncommitted consume throughput
of the same transactional data. Starts its own `corelog serve` (release
build) unless --bootstrap is given; prints one JSON object.

  python3 bench/clients/txn_perf.py --records 200000 --rounds 3
"""

import argparse
import json
import os
import signal
import statistics
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from librdkafka_perf import start_broker  # noqa: E402


def produce(bootstrap, topic, records, group, transactional, value, tag):
    """Produces `records` records in groups of `group`: each group one
    transaction, or (idempotent) followed by a flush. Returns (records/s,
    [seconds per group])."""
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
            "enable.idempotence": True, "acks": "all"}
    if transactional:
        conf["transactional.id"] = f"perf-{tag}"
    p = Producer(conf)
    if transactional:
        p.init_transactions(60)
    latencies = []
    start = time.perf_counter()
    for first in range(0, records, group):
        t0 = time.perf_counter()
        if transactional:
            p.begin_transaction()
        for _ in range(min(group, records - first)):
            while True:
                try:
                    p.produce(topic, value)
                    break
                except BufferError:
                    p.poll(0.001)
        if transactional:
            p.commit_transaction(60)
        else:
            assert p.flush(60) == 0
        latencies.append(time.perf_counter() - t0)
    return records / (time.perf_counter() - start), latencies


def consume(bootstrap, topic, partitions, isolation, expected, extra=None):
    """Reads `expected` records of `topic` from the start (`extra`: more
    consumer settings); returns (records/s, records read)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "perf", "enable.auto.commit": False,
                  "isolation.level": isolation, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 10_485_760, **(extra or {})})
    c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(partitions)])
    got = 0
    start = time.perf_counter()
    deadline = start + 300
    while got < expected and time.perf_counter() < deadline:
        got += sum(1 for m in c.consume(100_000, 1.0) if m.error() is None)
    rate = got / (time.perf_counter() - start)
    c.close()
    return rate, got


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--port", type=int, default=29192)
    ap.add_argument("--flush", default="fsync")
    ap.add_argument("--records", type=int, default=200_000, help="per mode and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=6)
    args = ap.parse_args()
    proc = None
    if not args.bootstrap:
        proc, _ = start_broker(args.shards, args.port, args.flush)
        args.bootstrap = f"127.0.0.1:{args.port}"
    try:
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        value = b"x" * 100
        modes = [("idempotent", 100, False), ("transactional", 100, True),
                 ("idempotent", 10_000, False), ("transactional", 10_000, True)]
        rates = {m: [] for m in modes}
        latencies = {m: [] for m in modes}
        txn_topic = None
        for r in range(args.rounds):
            for mode in modes:
                topic = f"perf-{mode[0]}-{mode[1]}-{r}-{int(time.time() * 1000)}"
                admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(60)
                rate, lat = produce(args.bootstrap, topic, args.records, mode[1], mode[2], value,
                                    f"{mode[1]}-{r}-{time.time()}")
                rates[mode].append(rate)
                latencies[mode].extend(lat)
                if mode == ("transactional", 100, True):
                    txn_topic = topic
        # The same transactional data (100-record transactions: the most
        # markers and aborted-index lookups), read both ways, alternating.
        consume_rates = {"read_committed": [], "read_uncommitted": []}
        for _ in range(args.rounds):
            for isolation in consume_rates:
                rate, got = consume(args.bootstrap, txn_topic, args.partitions, isolation, args.records)
                assert got == args.records, (isolation, got)
                consume_rates[isolation].append(rate)
        out = {
            "client": "librdkafka " + __import__("confluent_kafka").libversion()[0] + " (confluent-kafka, Python)",
            "shards": args.shards, "flush": args.flush, "partitions": args.partitions,
            "records_per_mode_and_round": args.records, "rounds": args.rounds, "record_bytes": 100,
            "produce": {
                f"{m[0]} {m[1]}": {
                    "records_per_sec_median": round(statistics.median(rates[m])),
                    "group_ms_p50": round(pct(latencies[m], 0.5) * 1000, 2),
                    "group_ms_p99": round(pct(latencies[m], 0.99) * 1000, 2),
                } for m in modes
            },
            "consume_records_per_sec_median": {k: round(statistics.median(v)) for k, v in consume_rates.items()},
        }
        print(json.dumps(out, indent=1))
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    main()
