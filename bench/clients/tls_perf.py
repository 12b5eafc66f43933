#!/usr/bin/env python3
"""Produce and consume throughput, and the broker's CPU per GB, over
PLAINTEXT and over TLS, through librdkafka (confluent-kafka), in one run
against one node serving both listeners.

Each round produces RECORDS records into a fresh topic per protocol
(PLAINTEXT then SSL, or SSL then PLAINTEXT in alternate rounds), then
restarts the node, so both consumes read cold from the segment files:
spliced to the PLAINTEXT consumer, read and encrypted in user space for
the TLS one (this kernel's kernel TLS, when present, is not used yet).
The certificates (ECDSA P-256, TLS 1.3 with AES-256-GCM as librdkafka
and rustls agree) are made with openssl for the run. Prints one JSON
object per phase and protocol, then the TLS/PLAINTEXT ratios of each
round.

  cargo build --release --bin corelog
  python3 bench/clients/tls_perf.py --records 500000 --rounds 3
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
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS = os.sysconf("SC_CLK_TCK")


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=localhost")
    with open(f"{d}/server.ext", "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
            "-CAcreateserial", "-out", f"{d}/server.pem", "-days", "2", "-extfile", f"{d}/server.ext")


class Node:
    def __init__(self, binary, data, pki, port, shards):
        self.args = [binary, "serve", "--data-dir", data, "--shards", str(shards), "--metrics-port", "0",
                     "--listener", f"PLAINTEXT://127.0.0.1:{port}",
                     "--listener", f"SSL://127.0.0.1:{port + 10}",
                     "--ssl-certificate", f"{pki}/server.pem", "--ssl-key", f"{pki}/server.key"]
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready = threading.Event()
        threading.Thread(target=lambda: [ready.set() for l in self.proc.stdout if l.strip() == "ready"],
                         daemon=True).start()
        if not ready.wait(60):
            self.proc.kill()
            sys.exit("the node did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def conf(self, protocol, pki):
        if protocol == "PLAINTEXT":
            return {"bootstrap.servers": f"127.0.0.1:{self.port}"}
        return {"bootstrap.servers": f"127.0.0.1:{self.port + 10}", "security.protocol": "SSL",
                "ssl.ca.location": f"{pki}/ca.pem"}


def produce(conf, topic, records, value):
    p = Producer({**conf, "acks": "all", "linger.ms": 5, "batch.size": 1_000_000,
                  "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
                  "compression.type": "none"})
    start = time.perf_counter()
    for i in range(records):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.001)
        if i % 10_000 == 0:
            p.poll(0)
    assert p.flush(300) == 0
    return time.perf_counter() - start


def consume(conf, topic, partitions, records):
    c = Consumer({**conf, "group.id": "perf", "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
                  "max.partition.fetch.bytes": 10_485_760})
    c.assign([TopicPartition(topic, i, OFFSET_BEGINNING) for i in range(partitions)])
    got, start = 0, time.perf_counter()
    deadline = start + 300
    while got < records and time.perf_counter() < deadline:
        got += sum(1 for m in c.consume(100_000, 1.0) if not m.error())
    elapsed = time.perf_counter() - start
    c.close()
    if got != records:
        sys.exit(f"{topic}: consumed {got} of {records}")
    return elapsed


def report(phase, protocol, rnd, records, size, seconds, cpu):
    gb = records * size / 1e9
    line = {"round": rnd, "phase": phase, "protocol": protocol, "records": records, "record_bytes": size,
            "records_per_sec": round(records / seconds), "mb_per_sec": round(gb * 1000 / seconds, 1),
            "broker_cpu_s_per_gb": round(cpu / gb, 2)}
    print(json.dumps(line), flush=True)
    return line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--record-size", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=29300)
    args = ap.parse_args()
    binary = os.environ.get("CORELOG_BIN", os.path.join(ROOT, "target", "release", "corelog"))
    base = os.path.join(ROOT, "bench-data") if os.path.isdir(os.path.join(ROOT, "bench-data")) else None
    print(json.dumps({"client": "librdkafka " + libversion()[0] + " (confluent-kafka, Python)",
                      "shards": args.shards, "partitions": args.partitions, "flush": "fsync", "acks": "all"}))
    value = b"x" * args.record_size
    with tempfile.TemporaryDirectory(prefix="corelog-tls-", dir=base) as d:
        pki = os.path.join(d, "pki")
        os.mkdir(pki)
        make_certificates(pki)
        for rnd in range(args.rounds):
            node = Node(binary, os.path.join(d, f"data{rnd}"), pki, args.port, args.shards)
            try:
                run_round(node, pki, rnd, args, value)
            finally:
                if node.proc.poll() is None:
                    node.proc.kill()


def run_round(node, pki, rnd, args, value):
    node.start()
    order = ["PLAINTEXT", "SSL"] if rnd % 2 == 0 else ["SSL", "PLAINTEXT"]
    lines = {}
    for protocol in order:
        topic = f"perf-{protocol.lower()}"
        admin = AdminClient(node.conf("PLAINTEXT", pki))
        admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(60)
        del admin
        cpu = node.cpu_s()
        s = produce(node.conf(protocol, pki), topic, args.records, value)
        lines[("produce", protocol)] = report("produce", protocol, rnd, args.records, args.record_size, s,
                                              node.cpu_s() - cpu)
    node.stop()
    node.start()
    for protocol in order:
        topic = f"perf-{protocol.lower()}"
        cpu = node.cpu_s()
        s = consume(node.conf(protocol, pki), topic, args.partitions, args.records)
        lines[("consume", protocol)] = report("consume", protocol, rnd, args.records, args.record_size, s,
                                              node.cpu_s() - cpu)
    node.stop()
    for phase in ["produce", "consume"]:
        tls, plain = lines[(phase, "SSL")], lines[(phase, "PLAINTEXT")]
        print(json.dumps({"round": rnd, "phase": phase,
                          "tls_over_plaintext_throughput": round(tls["mb_per_sec"] / plain["mb_per_sec"], 2),
                          "tls_over_plaintext_cpu_per_gb": round(
                              tls["broker_cpu_s_per_gb"] / max(plain["broker_cpu_s_per_gb"], 0.01), 2)}),
              flush=True)


if __name__ == "__main__":
    main()
