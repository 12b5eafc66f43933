#!/usr/bin/env python3
"""A/B of two corelog builds under the same broker benchmark, runs
alternating (A B A B ...) so that drift on the machine hits both alike.

usage: bench/ab.py A_BIN B_BIN RUNS BENCHMARK [bench flags...]
example: bench/ab.py /tmp/old/corelog target/release/corelog 3 produce --batch-records 10 --records 2000000

Each binary runs its own `corelog bench BENCHMARK --runs 1` (which starts
its own broker from that binary); the table gives each run's records/s,
ack p99 and broker CPU seconds per GB, then the medians and B/A ratios.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    a, b, runs, benchmark, flags = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
    rows = {"A": [], "B": []}
    work = tempfile.mkdtemp(prefix="corelog-ab-")
    for i in range(runs):
        for label, binary in (("A", a), ("B", b)):
            results = os.path.join(work, f"{label}{i}")
            cmd = [binary, "bench", benchmark, "--runs", "1", "--dir", os.path.join(work, "data"),
                   "--results", results] + flags
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            with open(os.path.join(results, f"{benchmark}.json")) as f:
                r = json.load(f)
            rows[label].append(r)
            print(f"{label} run {i + 1}: {r['records_per_sec'] / 1e6:.3f} M records/s, p99 {r['p99_us']} us, "
                  f"broker {r['broker_cpu_seconds_per_gb']} CPU s/GB", flush=True)
    print(f"\nA = {a}\nB = {b}\n{benchmark} {' '.join(flags)}, {runs} runs each, alternating")
    print("| | A median | B median | B/A |\n|---|---|---|---|")
    for key, name in (("records_per_sec", "records/s"), ("p99_us", "ack p99 (µs)"),
                      ("broker_cpu_seconds_per_gb", "broker CPU s/GB")):
        if any(r.get(key) is None for r in rows["A"] + rows["B"]):
            continue  # not measured by this benchmark (consume has no ack latency)
        ma = statistics.median(r[key] for r in rows["A"])
        mb = statistics.median(r[key] for r in rows["B"])
        print(f"| {name} | {ma:,.2f} | {mb:,.2f} | {mb / ma:.3f} |")


if __name__ == "__main__":
    main()
