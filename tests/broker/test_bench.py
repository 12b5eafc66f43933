"""The load generator (`corelog bench`) against a real broker: the batches
it sends, compressed with each codec or not, are what librdkafka reads
back, and its result files carry the figures benchmarks promise."""

import json
import subprocess
import uuid
from types import SimpleNamespace

import pytest

from conftest import BINARY
from test_cli import cli_pki  # noqa: F401  (a CA, a server and a client certificate)
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


def producers(bootstrap, topic, partition):
    """The partition's active producers as DescribeProducers reports them."""
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KTopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin.describe_producers([KTopicPartition(topic, partition)])[
            KTopicPartition(topic, partition)].active_producers
    finally:
        admin.close()


def test_idempotent_and_transactional_loads_stamp_sequences_and_commit_every_group(broker, tmp_path):
    """Two partitions on the broker's two shards: one connection each,
    1,500 records per partition in requests of 100. Idempotent, the
    partition's producer has sequences up to 1,499 (each request stamped
    in turn) and no transaction; transactional, groups of 500 records are
    three committed transactions per partition: three markers, nothing
    left open, and read_committed reads every record (librdkafka's, and
    the generator's own consumer, which counts no marker as a record)."""
    from confluent_kafka import TopicPartition

    from conftest import wait_until
    from test_transactions import TIMEOUT_S, consumer, stable_and_high

    for kind in ["idempotent", "transactional"]:
        topic = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
        result = run_bench(broker, tmp_path, "produce", "--topic", topic, "--partitions", "2",
                           "--records", "3000", "--batch-records", "100", "--producer", kind,
                           "--group-records", "500", "--runs", "1")
        assert result["records"] == 3000
        assert result["config"]["producer"] == kind
        assert result["groups"] == 6, "three groups per connection"
        assert 0 < result["group_p50_us"] <= result["group_p99_us"]
        markers = 3 if kind == "transactional" else 0
        for p in range(2):
            # EndTxn is answered before its markers are written: wait for them.
            wait_until(lambda: stable_and_high(broker.bootstrap, topic, p) == (1500 + markers, 1500 + markers),
                       TIMEOUT_S, f"the last stable offset of partition {p}")
            (state,) = producers(broker.bootstrap, topic, p)
            assert (state.last_sequence, state.current_transaction_start_offset) == (1499, -1), state
        c = consumer(broker.bootstrap, "read_committed")
        c.assign([TopicPartition(topic, p, 0) for p in range(2)])
        got = []
        wait_until(lambda: got.extend(m for m in c.consume(500, 0.2) if m.error() is None)
                   or len(got) >= 3000, TIMEOUT_S, "read_committed records")
        c.close()
        assert len(got) == 3000 and len({(m.partition(), m.offset()) for m in got}) == 3000
        consumed = run_bench(broker, tmp_path, "consume", "--topic", topic, "--partitions", "2", "--runs", "1")
        assert consumed["records"] == 3000


@pytest.mark.parametrize("listener, config", [
    ("SASL_SSL", "sasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\nsasl.password=alice-pw\n"
                 "ssl.ca.location={ca}\n"),
    ("SSL", "ssl.ca.location={ca}\nssl.certificate.location={carol}.pem\nssl.key.location={carol}.key\n"),
    ("SASL_PLAINTEXT", "sasl.mechanism=PLAIN\nsasl.username=alice\nsasl.password=alice-pw\n"),
])
def test_the_generator_speaks_tls_and_sasl_with_a_command_config(make_broker, cli_pki, tmp_path,
                                                                 listener, config):
    """`--command-config` as the admin CLI takes it: idempotent producers
    with five requests in flight per connection (a writer and a reader
    thread sharing each TLS session), then the consumers, over the
    secured listener with the authorizer on; librdkafka reads back over
    PLAINTEXT every record the generator counted, each once."""
    tls = ["--ssl-certificate", cli_pki.path("server.pem"), "--ssl-key", cli_pki.path("server.key"),
           "--ssl-client-ca", cli_pki.path("ca.pem"), "--ssl-client-auth", "requested"]
    b = make_broker(listeners=("PLAINTEXT", listener), extra_args=[
        *(tls if "SSL" in listener else []), "--scram-credential", "alice:SCRAM-SHA-512:alice-pw",
        "--authorizer", "on", "--super-users", "User:alice;User:CN=carol;User:ANONYMOUS"]).start()
    props = tmp_path / "bench.properties"
    props.write_text(f"security.protocol={listener}\n"
                     + config.format(ca=cli_pki.path("ca.pem"), carol=cli_pki.path("carol")))
    topic = f"bench-sec-{uuid.uuid4().hex[:6]}"
    secured = SimpleNamespace(bootstrap=b.bootstrap_of(listener))
    common = ["--topic", topic, "--partitions", "4", "--runs", "1", "--command-config", str(props)]
    produced = run_bench(secured, tmp_path, "produce", *common, "--records", "40000", "--batch-records", "100",
                         "--producer", "idempotent", "--in-flight", "5")
    assert produced["records"] == 40000
    assert produced["broker"]["security"].startswith(listener), produced["broker"]
    consumed = run_bench(secured, tmp_path, "consume", *common)
    assert consumed["records"] == 40000
    got = consume_all(b.bootstrap_of("PLAINTEXT"), topic, 4, 40000)
    assert len(got) == 40000 and all(len(m.value()) == 100 for m in got)
    assert len({(m.partition(), m.offset()) for m in got}) == 40000
