#!/usr/bin/env python3
"""Prints the Markdown tables of docs/BENCHMARKS.md from the broker
benchmarks' JSON results (bench/results/*.json), so the document shows
exactly what the last runs measured.

    python3 bench/tables.py [RESULTS_DIR]
"""

import json
import os
import sys

RESULTS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")


def load(name):
    path = os.path.join(RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def n(v, digits=0):
    if v is None:
        return ""
    return f"{v:,.{digits}f}"


def spread(r, field="records_per_sec"):
    s = r.get("spread", {}).get(field)
    return f"{n(s[0])}–{n(s[2])}" if s else ""


def header(v):
    m = v["machine"]
    return f"Commit `{v['commit']}`, {m['cpus']} vCPU {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}."


def kcat(r):
    k = r.get("librdkafka_kcat") or {}
    return n(k.get("records_per_sec")) if "records_per_sec" in k else k.get("error", "")


def building_blocks():
    rows = []
    for name in ["produce", "consume", "e2e"]:
        v = load(name)
        if not v:
            continue
        rows.append((name, v))
    if not rows:
        return
    print("| benchmark | records/s (median) | min–max | MB/s | p50 µs | p99 µs | p99.9 µs | kcat records/s | broker CPU s/GB | broker CPU µs/batch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, v in rows:
        print(f"| `{name}` | {n(v['records_per_sec'])} | {spread(v)} | {n(v['mb_per_sec'], 1)} | {n(v.get('p50_us'))} | "
              f"{n(v.get('p99_us'))} | {n(v.get('p999_us'))} | {kcat(v)} | {n(v.get('broker_cpu_seconds_per_gb'), 2)} | {n(v.get('broker_cpu_us_per_batch'), 1)} |")
    print()
    for name, v in rows:
        c = v.get("cold_read")
        if c:
            print(f"`{name}`'s first run, from the disk: {n(c.get('batch_mb_per_sec'), 1)} MB/s of batches; "
                  f"fio's sequential direct read (1 MiB, depth 4) in the same run "
                  f"{n((c.get('fio') or {}).get('mb_per_sec'), 1) or (c.get('fio') or {}).get('error')} MB/s; "
                  f"ratio {c.get('ratio_to_fio')}.")
            print()
    print(header(rows[0][1]))
    print()


def kafka_2014():
    v = load("kafka-2014")
    if not v:
        return
    print("| case | Kafka 2014 records/s | Corelog records/s (median) | min–max | ratio | MB/s | p50 µs | p99 µs | kcat records/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for c in v["cases"]:
        r = c.get("result") or {}
        ours = n(r.get("records_per_sec")) if r else "pending"
        print(f"| {c['case']} | {n(c.get('kafka_2014_records_per_sec'))} | {ours} | {spread(r) if r else ''} | "
              f"{n(c.get('ratio_to_kafka_2014'), 2)} | {n(r.get('mb_per_sec'), 1)} | {n(r.get('p50_us'))} | "
              f"{n(r.get('p99_us'))} | {kcat(c)} |")
    print()
    print("| record size | records per batch | records/s | MB/s | p99 µs |")
    print("|---|---|---|---|---|")
    for s in v["record_size"]:
        r = s["result"]
        print(f"| {s['record_size']:,} B | {s['batch_records']} | {n(r['records_per_sec'])} | {n(r['mb_per_sec'], 1)} | {n(r.get('p99_us'))} |")
    print()
    print("| stored before the chunk | records/s | MB/s | p99 µs |")
    print("|---|---|---|---|")
    for g in v["stored_data_growth"]:
        r = g["result"]
        print(f"| {g['stored_gb_before']} GB | {n(r['records_per_sec'])} | {n(r['mb_per_sec'], 1)} | {n(r.get('p99_us'))} |")
    print()
    print(header(v))
    print()


def scaling():
    v = load("scaling")
    if not v:
        return
    print("| shards | records/s (median) | min–max | MB/s | broker CPU s/GB | broker CPU µs/batch | generator CPU s | kcat records/s |")
    print("|---|---|---|---|---|---|---|---|")
    for s in v["steps"]:
        r = s["result"]
        print(f"| {s['shards']} | {n(r['records_per_sec'])} | {spread(r)} | {n(r['mb_per_sec'], 1)} | "
              f"{n(r.get('broker_cpu_seconds_per_gb'), 2)} | {n(r.get('broker_cpu_us_per_batch'), 1)} | "
              f"{n(r.get('generator_cpu_seconds'), 2)} | {kcat(s)} |")
    print()
    print(header(v))
    print()


def durability():
    v = load("durability")
    if not v:
        return
    print("| flush | load | records/s | ack p50 µs | ack p99 µs | ack p99.9 µs | e2e p50 µs | e2e p99 µs | e2e p99.9 µs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in v["modes"]:
        print(f"| {m['flush']} | peak | {n(m['peak']['records_per_sec'])} ({spread(m['peak'])}) | {n(m['peak'].get('p50_us'))} | "
              f"{n(m['peak'].get('p99_us'))} | {n(m['peak'].get('p999_us'))} | | | |")
        for lv in m["levels"]:
            a, e = lv["ack"], lv["end_to_end"]
            print(f"| {m['flush']} | {lv['load_percent']}% | {n(a['records_per_sec'])} | {n(a.get('p50_us'))} | "
                  f"{n(a.get('p99_us'))} | {n(a.get('p999_us'))} | {n(e.get('p50_us'))} | {n(e.get('p99_us'))} | {n(e.get('p999_us'))} |")
    f = v.get("reference_fdatasync", {})
    print()
    print(f"fio fdatasync latency (16 KiB writes), same run: p50 {n(f.get('p50_us'))} µs, p99 {n(f.get('p99_us'))} µs, "
          f"p99.9 {n(f.get('p999_us'))} µs.")
    print()
    print(header(v))
    print()


def traps():
    v = load("traps")
    if not v:
        return
    print("| case | records/s (median) | MB/s | p99 µs | broker CPU s/GB | broker CPU µs/batch | vs baseline | note |")
    print("|---|---|---|---|---|---|---|---|")
    for c in v["cases"]:
        r = c.get("result")
        if r is None:
            rounds = c.get("rounds", [])
            rates = [x["result"]["records_per_sec"] for x in rounds]
            print(f"| {c['case']} | {n(min(rates))}–{n(max(rates))} over {len(rounds)} rounds | | | | | | "
                  f"segments deleted while producing: {c.get('segments_deleted')} |")
            continue
        note = ""
        if "fio" in c:
            note = f"fio {n(c['fio'].get('mb_per_sec'), 1)} MB/s same run, ratio {c.get('ratio_to_fio')} (batch bytes)"
        print(f"| {c['case']} | {n(r['records_per_sec'])} | {n(r['mb_per_sec'], 1)} | {n(r.get('p99_us'))} | "
              f"{n(r.get('broker_cpu_seconds_per_gb'), 2)} | {n(r.get('broker_cpu_us_per_batch'), 1)} | "
              f"{n(c.get('ratio_to_baseline'), 2)} | {note} |")
    print()
    print(header(v))
    print()


for section in [building_blocks, kafka_2014, scaling, durability, traps]:
    section()
