#!/usr/bin/env python3
"""The cost of old message formats (decision 46), through librdkafka
(confluent-kafka) in one run against one broker, in alternating rounds:
produce throughput of a producer told the broker is 0.9.0 (Produce v1,
message format v0, up-converted to record batches; from 0.10 librdkafka
asks ApiVersions and speaks the current protocol) against a current one
(Produce v9, batches stored as sent); then consume throughput of a
consumer in the same mode (Fetch v1: every record converted from the
log's batches, in memory) against a current one (Fetch v16, cold data
spliced), over the same data. Starts
its own `corelog serve` (release build) unless --bootstrap is given;
prints one JSON object.

  python3 bench/clients/legacy_perf.py --records 200000 --rounds 3
"""

import argparse
import json
import os
import signal
import statistics
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from librdkafka_perf import start_broker  # noqa: E402
from txn_perf import consume  # noqa: E402

MODES = {
    "current": {},
    "0.9.0": {"api.version.request": False, "broker.version.fallback": "0.9.0"},
}


def produce(bootstrap, topic, records, mode, value):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 10_000,
                  "queue.buffering.max.messages": 1_000_000, "acks": "all", "log_level": 3,
                  **MODES[mode]})
    start = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.001)
    assert p.flush(120) == 0
    return records / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--port", type=int, default=29292)
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
        produced = {m: [] for m in MODES}
        consumed = {m: [] for m in MODES}
        data = None
        for r in range(args.rounds):
            for mode in MODES:
                topic = f"legacy-{mode}-{r}-{int(time.time() * 1000)}"
                admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(60)
                produced[mode].append(produce(args.bootstrap, topic, args.records, mode, value))
                if mode == "current":
                    data = topic
        # The same data (a current producer's batches) read by each mode.
        for _ in range(args.rounds):
            for mode in MODES:
                rate, got = consume(args.bootstrap, data, args.partitions, "read_uncommitted", args.records,
                                    {"fetch.message.max.bytes": 10_485_760, "log_level": 3, **MODES[mode]})
                assert got == args.records, (mode, got)
                consumed[mode].append(rate)
        out = {
            "client": "librdkafka " + __import__("confluent_kafka").libversion()[0] + " (confluent-kafka, Python)",
            "shards": args.shards, "flush": args.flush, "partitions": args.partitions,
            "records_per_mode_and_round": args.records, "rounds": args.rounds, "record_bytes": 100,
            "produce_records_per_sec": {m: [round(x) for x in v] for m, v in produced.items()},
            "consume_records_per_sec": {m: [round(x) for x in v] for m, v in consumed.items()},
            "produce_ratio_to_current_median": {
                m: round(statistics.median(v) / statistics.median(produced["current"]), 2)
                for m, v in produced.items()},
            "consume_ratio_to_current_median": {
                m: round(statistics.median(v) / statistics.median(consumed["current"]), 2)
                for m, v in consumed.items()},
        }
        print(json.dumps(out, indent=1))
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    main()
