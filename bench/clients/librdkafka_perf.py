#!/usr/bin/env python3
"""Produce and consume throughput of 100-byte records through librdkafka
(confluent-kafka), the figure a real client sees. Starts its own
`corelog serve` (release build) unless --bootstrap is given, and prints one
JSON object per run.

  python3 bench/clients/librdkafka_perf.py --shards 1 --records 2000000
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_broker(shards, port, flush):
    data = tempfile.mkdtemp(prefix="corelog-perf-", dir=os.path.join(ROOT, "bench-data") if os.path.isdir(os.path.join(ROOT, "bench-data")) else None)
    binary = os.path.join(ROOT, "target", "release", "corelog")
    proc = subprocess.Popen([binary, "serve", "--data-dir", data, "--port", str(port), "--shards", str(shards), "--flush", flush],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ready = threading.Event()
    threading.Thread(target=lambda: [ready.set() for l in proc.stdout if l.strip() == "ready"], daemon=True).start()
    if not ready.wait(60):
        proc.kill()
        sys.exit("broker did not start")
    return proc, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--port", type=int, default=29092)
    ap.add_argument("--flush", default="fsync")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--acks", default="all")
    args = ap.parse_args()
    proc = None
    if not args.bootstrap:
        proc, _ = start_broker(args.shards, args.port, args.flush)
        args.bootstrap = f"127.0.0.1:{args.port}"
    try:
        topic = f"perf-{int(time.time() * 1000)}"
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(60)
        value = b"x" * args.record_size
        p = Producer({"bootstrap.servers": args.bootstrap, "acks": args.acks, "linger.ms": 5,
                      "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
                      "queue.buffering.max.kbytes": 1_048_576, "compression.type": "none"})
        start = time.perf_counter()
        for i in range(args.records):
            while True:
                try:
                    p.produce(topic, value)
                    break
                except BufferError:
                    p.poll(0.001)
            if i % 10_000 == 0:
                p.poll(0)
        assert p.flush(120) == 0
        produce_s = time.perf_counter() - start
        c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "perf", "enable.auto.commit": False,
                      "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
        c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(args.partitions)])
        got = 0
        start = time.perf_counter()
        deadline = start + 300
        while got < args.records and time.perf_counter() < deadline:
            got += len(c.consume(100_000, 1.0))
        consume_s = time.perf_counter() - start
        c.close()
        print(json.dumps({
            "client": "librdkafka " + __import__("confluent_kafka").libversion()[0] + " (confluent-kafka, Python)",
            "shards": args.shards, "partitions": args.partitions, "flush": args.flush, "acks": args.acks,
            "records": args.records, "record_bytes": args.record_size,
            "produce_records_per_sec": round(args.records / produce_s),
            "produce_mb_per_sec": round(args.records * args.record_size / produce_s / 1e6, 1),
            "consume_records_per_sec": round(got / consume_s),
            "consume_mb_per_sec": round(got * args.record_size / consume_s / 1e6, 1),
            "consumed": got,
        }))
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    main()
