#!/usr/bin/env python3
"""Client quotas held to their rate: librdkafka (confluent-kafka) producing
and consuming as fast as it can under a producer_byte_rate and a
consumer_byte_rate quota, against the same client without a quota in the
same run. The rate is what was acknowledged (produce) or received
(consume) per second from the client's start over PERIODS periods of 11 s:
Kafka's rate spans 11 one-second samples, so a client at its limit sends
ten seconds of quota at once whenever an old burst leaves the window,
and its rate is the quota over whole periods, not over any 30 s. The
result is the ratio to the quota, and whether it is within TOLERANCE.

  cargo build --release --bin corelog
  python3 bench/clients/quota_perf.py --quota 5000000 --periods 3
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

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition, libversion

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PERIOD_S = 11


def corelog(binary, *args):
    subprocess.run([binary, *args], check=True, capture_output=True, timeout=60)


def produce_for(bootstrap, client_id, topic, seconds, record):
    """Produces as fast as the client may for `seconds`; returns the bytes
    acknowledged within them."""
    acked = []
    p = Producer({"bootstrap.servers": bootstrap, "client.id": client_id, "acks": "all", "linger.ms": 5,
                  "queue.buffering.max.kbytes": 65536, "compression.type": "none"})
    start = time.monotonic()
    end = start + seconds

    def done(err, msg):
        if err is None:
            acked.append((time.monotonic(), len(msg.value())))

    while time.monotonic() < end:
        try:
            p.produce(topic, record, on_delivery=done)
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    p.purge()
    p.flush(30)
    return sum(n for t, n in acked if t <= end)


def consume_for(bootstrap, client_id, topic, seconds):
    got = []
    c = Consumer({"bootstrap.servers": bootstrap, "client.id": client_id, "group.id": client_id,
                  "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for m in c.consume(10_000, 0.2):
            if not m.error():
                got.append((time.monotonic(), len(m.value())))
    c.close()
    return sum(n for t, n in got if t <= end)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quota", type=float, default=5_000_000, help="bytes per second")
    ap.add_argument("--periods", type=int, default=3)
    ap.add_argument("--record-size", type=int, default=1000)
    ap.add_argument("--tolerance", type=float, default=0.1)
    ap.add_argument("--port", type=int, default=29400)
    args = ap.parse_args()
    binary = os.environ.get("CORELOG_BIN", os.path.join(ROOT, "target", "release", "corelog"))
    base = os.path.join(ROOT, "bench-data") if os.path.isdir(os.path.join(ROOT, "bench-data")) else None
    bootstrap = f"127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory(prefix="corelog-quota-", dir=base) as d:
        proc = subprocess.Popen([binary, "serve", "--data-dir", d, "--port", str(args.port), "--shards", "1",
                                 "--metrics-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        ready = threading.Event()
        threading.Thread(target=lambda: [ready.set() for l in proc.stdout if l.strip() == "ready"],
                         daemon=True).start()
        try:
            if not ready.wait(60):
                sys.exit("the node did not start")
            q = str(int(args.quota))
            corelog(binary, "quota", "set", "--client-id", "limited", "--producer-byte-rate", q,
                    "--consumer-byte-rate", q, "--bootstrap", bootstrap)
            seconds = PERIOD_S * args.periods
            print(json.dumps({"client": "librdkafka " + libversion()[0], "shards": 1, "quota_bytes_per_s": args.quota,
                              "window_s": seconds}), flush=True)
            record = b"q" * args.record_size
            for phase in ["produce", "consume"]:
                for client_id in ["unlimited", "limited"]:
                    if phase == "produce":
                        n = produce_for(bootstrap, client_id, f"quota-{client_id}", seconds, record)
                    else:
                        # Both read the unlimited producer's topic: more
                        # than either can read in the time.
                        n = consume_for(bootstrap, client_id, "quota-unlimited", seconds)
                    rate = n / seconds
                    line = {"phase": phase, "client_id": client_id, "bytes_per_s": round(rate)}
                    if client_id == "limited":
                        ratio = rate / args.quota
                        line.update(ratio_to_quota=round(ratio, 3), within_tolerance=abs(ratio - 1) <= args.tolerance)
                    print(json.dumps(line), flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)


if __name__ == "__main__":
    main()
