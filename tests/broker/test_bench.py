"""The load generator (`corelog bench`) against a real broker: the batches
it sends, compressed with each codec or not, are what librdkafka reads
back, and its result files carry the figures benchmarks promise."""

import json
import subprocess
import uuid

from conftest import BINARY
from test_clients import CODECS, consume_all, stored_codecs

BENCH_TIMEOUT_S = 120


def run_bench(broker, tmp_path, name, *args):
    results = tmp_path / "results"
    subprocess.run(
        [BINARY, "bench", name, "--bootstrap", broker.bootstrap, "--dir", str(tmp_path / "data"),
         "--results", str(results), *args],
        check=True, timeout=BENCH_TIMEOUT_S, capture_output=True, text=True)
    return json.loads((results / f"{name}.json").read_text())


def test_generated_batches_of_every_codec_are_read_by_librdkafka(broker, tmp_path):
    for codec in ["none", *CODECS]:
        topic = f"bench-{codec}-{uuid.uuid4().hex[:6]}"
        result = run_bench(broker, tmp_path, "produce", "--topic", topic, "--partitions", "2",
                           "--records", "3000", "--batch-records", "100", "--compression", codec)
        assert result["records"] == 3000
        assert result["config"]["compression"] == codec
        assert result["p50_us"] > 0 and result["p99_us"] >= result["p50_us"]
        got = consume_all(broker.bootstrap, topic, 2, 3000)
        assert all(len(m.value()) == 100 for m in got)
        assert len({m.value() for m in got}) > 100, "values differ, as real data does"
        assert stored_codecs(broker, topic, 2) == {CODECS.get(codec, 0)}


# The figures whose [min, median, max] over the runs `spread` reports.
SPREAD_FIELDS = ["records_per_sec", "mb_per_sec", "batch_mb_per_sec", "p50_us", "p99_us", "p999_us"]


def check_summary(phase, rank_by):
    """Recomputes a repeated phase's summary from its `runs`: `spread` must
    give each figure's min, median (the middle one of the sorted values,
    the upper one of an even count) and max, and the top-level figures must
    be those of the median run when ranked by `rank_by`."""
    runs = phase["runs"]
    for field in SPREAD_FIELDS:
        values = sorted(r[field] for r in runs)
        expected = [values[0], values[len(values) // 2], values[-1]]
        assert phase["spread"][field] == expected, f"spread of {field}: {phase['spread'][field]} from {values}"
    headline = {k: phase[k] for k in runs[0]}
    assert headline in runs, f"the top-level figures {headline} are not one of the runs {runs}"
    assert headline[rank_by] == sorted(r[rank_by] for r in runs)[len(runs) // 2], (
        f"the headline run is not the median by {rank_by}: {headline} of {runs}")


def test_consume_and_end_to_end_count_every_record(broker, tmp_path):
    topic = f"bench-e2e-{uuid.uuid4().hex[:6]}"
    # Three runs, so that the median is neither the min nor the max.
    e2e = run_bench(broker, tmp_path, "e2e", "--topic", topic, "--partitions", "3", "--runs", "3",
                    "--records", "6000", "--batch-records", "10", "--rate", "20000")
    assert e2e["records"] == 6000, "the consumers saw every record the producers sent"
    assert e2e["produce"]["records"] == 6000
    assert 0 < e2e["p50_us"] <= e2e["p99_us"] <= e2e["p999_us"]
    assert [r["records"] for r in e2e["runs"]] == [6000] * 3
    assert [r["records"] for r in e2e["produce"]["runs"]] == [6000] * 3
    # A paced (--rate) phase's median run is the one with the median p99.
    check_summary(e2e, "p99_us")
    check_summary(e2e["produce"], "p99_us")
    consumed = run_bench(broker, tmp_path, "consume", "--topic", topic, "--partitions", "3", "--runs", "1")
    assert consumed["records"] == 18000, "consume reads the whole topic from the beginning"
