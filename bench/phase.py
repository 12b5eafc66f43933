"""One line for one phase of a broker benchmark script (bench/tls.sh,
bench/ab.sh): the generator's result file, what to call the phase, and
the broker's CPU ticks before and after it (utime + stime from
/proc/PID/stat), optionally its resident memory in KiB afterwards.

    python3 bench/phase.py RESULT.json LABEL TICKS_BEFORE TICKS_AFTER [RSS_KIB]
"""
import json
import os
import sys

result, label, before, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = json.load(open(result))
cpu = (after - before) / os.sysconf("SC_CLK_TCK")
gb = r["records"] * r["config"]["record_size"] / 1e9
line = f"{label}: {r['records_per_sec']:>12,.0f} records/s {r['mb_per_sec']:8.1f} MB/s  "
if r.get("p99_us") is not None:  # acknowledgment latency: producers only
    line += f"p99 {r['p99_us']:>7,} µs  "
line += f"broker {cpu / gb:6.2f} CPU-s/GB"
if r.get("batches"):  # producers: the broker's CPU per batch acknowledged
    line += f" {cpu * 1e6 / r['batches']:6.1f} µs/batch"
if len(sys.argv) > 5:
    line += f"  RSS {int(sys.argv[5]) // 1024} MiB"
print(line)
