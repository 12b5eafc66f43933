"""The Prometheus endpoint (`corelog serve --metrics-port`), scraped over
HTTP and parsed with prometheus_client's text parser while real clients
produce and consume: counters move by exactly what was produced, gauges
match the log, a group's lag is the records it has not committed, and bad
scrapes get HTTP errors."""

import http.client
import socket
import subprocess
import threading
import urllib.error
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from conftest import BINARY, Broker, wait_until

TIMEOUT_S = 30


def scrape(broker):
    """{(sample name, sorted labels): value} and the families, parsed."""
    with urllib.request.urlopen(broker.metrics_url, timeout=TIMEOUT_S) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {}
    for f in families:
        for s in f.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples, families


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted((k, str(v)) for k, v in labels.items()))))


def total(samples, name, **labels):
    """Sum over the samples of `name` whose labels include `labels`."""
    want = {(k, str(v)) for k, v in labels.items()}
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def create_topic(broker, name, partitions):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def test_counters_move_by_what_is_produced_while_scraping(broker):
    topic = f"m-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic, 2)
    before, families = scrape(broker)
    # Every family is documented and named by the conventions.
    for f in families:
        assert f.name.startswith("corelog_"), f.name
        assert f.documentation, f.name
    assert value(before, "corelog_build_info", version="0.1.0", node=0) == 1
    assert value(before, "corelog_shard_up", shard=0) == 1 and value(before, "corelog_shard_up", shard=1) == 1
    assert total(before, "corelog_partition_records_in_total", topic=topic) == 0

    per_partition = {0: 3000, 1: 2000}
    done = threading.Event()
    errors = []

    def produce():
        try:
            p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all"})
            for partition, n in per_partition.items():
                for i in range(n):
                    p.produce(topic, f"v{i}".encode(), partition=partition,
                              on_delivery=lambda err, _: err and errors.append(err))
                    if i % 500 == 0:
                        p.poll(0)
            assert p.flush(TIMEOUT_S) == 0
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    # Scrape while producing: every counter only grows.
    last = 0
    scrapes = 0
    while not done.is_set() or scrapes == 0:
        samples, _ = scrape(broker)
        now = total(samples, "corelog_partition_records_in_total", topic=topic)
        assert now >= last, "a counter went backwards"
        last = now
        scrapes += 1
    producer.join(TIMEOUT_S)
    assert not errors, errors

    after, _ = scrape(broker)
    for partition, n in per_partition.items():
        labels = {"topic": topic, "partition": partition}
        assert total(after, "corelog_partition_records_in_total", **labels) == n
        assert total(after, "corelog_partition_log_end_offset", **labels) == n
        assert total(after, "corelog_partition_high_watermark", **labels) == n
        assert total(after, "corelog_partition_log_start_offset", **labels) == 0
        assert total(after, "corelog_partition_bytes_in_total", **labels) > n  # framing included
        assert total(after, "corelog_partition_size_bytes", **labels) == \
            total(after, "corelog_partition_bytes_in_total", **labels)
        assert total(after, "corelog_partition_segments", **labels) == 1
    # The two partitions are led by different shards.
    leaders = {ls for (n, ls), _ in after.items()
               if n == "corelog_partition_records_in_total" and ("topic", topic) in ls}
    assert {dict(ls)["shard"] for ls in leaders} == {"0", "1"}
    produced = total(after, "corelog_requests_total", api="Produce") - total(before, "corelog_requests_total", api="Produce")
    assert produced > 0
    assert total(after, "corelog_partition_produce_requests_total", topic=topic) == produced
    # Latency histograms count every request; acks=all waited for fdatasync rounds.
    assert total(after, "corelog_request_duration_seconds_count", api="Produce") == \
        total(after, "corelog_requests_total", api="Produce")
    assert total(after, "corelog_request_duration_seconds_bucket", api="Produce", le="+Inf") == \
        total(after, "corelog_requests_total", api="Produce")
    assert total(after, "corelog_fdatasync_total") > total(before, "corelog_fdatasync_total")
    assert total(after, "corelog_fdatasync_round_duration_seconds_count") > 0
    assert total(after, "corelog_disk_written_bytes_total") >= total(after, "corelog_partition_size_bytes", topic=topic)
    assert total(after, "corelog_connections_accepted_total") > total(before, "corelog_connections_accepted_total")


def test_a_small_write_to_a_new_segment_writes_zeros_ahead(broker):
    # Decision 52: a round of at most 32 KiB writes a step of zeros (at
    # least 64 KiB) past the data of a segment with none ahead; a new
    # partition's first record is such a round.
    topic = f"zeros-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic, 2)
    before, _ = scrape(broker)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for partition in (0, 1):
        p.produce(topic, b"v", partition=partition)
    assert p.flush(TIMEOUT_S) == 0
    after, _ = scrape(broker)
    assert total(after, "corelog_partition_records_in_total", topic=topic) == 2
    assert total(after, "corelog_disk_zero_writes_total") - total(before, "corelog_disk_zero_writes_total") >= 2
    assert total(after, "corelog_disk_zero_bytes_total") - total(before, "corelog_disk_zero_bytes_total") >= 2 * 65536


def test_group_lag_is_what_the_group_has_not_committed(broker):
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        p.produce(topic, f"r{i}".encode(), partition=0)
    assert p.flush(TIMEOUT_S) == 0

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen = []
    wait_until(lambda: seen.extend(m for m in c.consume(100, 1) if not m.error()) or len(seen) >= 40,
               TIMEOUT_S, "40 records")
    c.commit(offsets=[TopicPartition(topic, 0, 40)], asynchronous=False)
    samples, _ = scrape(broker)
    labels = {"group": group, "topic": topic, "partition": 0}
    assert value(samples, "corelog_group_committed_offset", **labels) == 40
    assert value(samples, "corelog_group_lag", **labels) == 60
    assert value(samples, "corelog_group_members", group=group) == 1
    assert value(samples, "corelog_group_state", group=group, state="Stable") == 1
    assert value(samples, "corelog_group_state", group=group, state="Empty") == 0
    assert total(samples, "corelog_partition_bytes_out_total", topic=topic) > 0
    assert total(samples, "corelog_partition_fetch_requests_total", topic=topic) > 0
    assert total(samples, "corelog_partition_cache_reads_total", topic=topic) > 0
    c.commit(offsets=[TopicPartition(topic, 0, 100)], asynchronous=False)
    c.close()
    samples, _ = scrape(broker)
    assert value(samples, "corelog_group_lag", **labels) == 0
    assert value(samples, "corelog_group_members", group=group) == 0
    assert value(samples, "corelog_group_state", group=group, state="Empty") == 1


def test_cold_reads_and_bad_frames_are_counted(broker):
    topic = f"cold-{uuid.uuid4().hex[:8]}"
    create_topic(broker, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(50):
        p.produce(topic, b"x" * 100, partition=0)
    assert p.flush(TIMEOUT_S) == 0
    broker.restart()  # the cache starts empty: reads come from the segment file
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    got = []
    wait_until(lambda: got.extend(m for m in c.consume(50, 1) if not m.error()) or len(got) >= 50,
               TIMEOUT_S, "50 records")
    c.close()
    before, _ = scrape(broker)
    assert total(before, "corelog_partition_file_reads_total", topic=topic) > 0
    # A frame of a negative size closes the connection and counts.
    with socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S) as s:
        s.sendall(b"\xff\xff\xff\xff")
        assert s.recv(1) == b""
    wait_until(lambda: total(scrape(broker)[0], "corelog_protocol_errors_total")
               == total(before, "corelog_protocol_errors_total") + 1, TIMEOUT_S, "the protocol error counted")


def test_bad_scrapes_get_http_errors(broker):
    host, port = "127.0.0.1", broker.metrics_port
    for method, path, status in [("GET", "/nope", 404), ("POST", "/metrics", 405), ("HEAD", "/metrics", 200),
                                 ("HEAD", "/nope", 404)]:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
        conn.request(method, path)
        r = conn.getresponse()
        assert r.status == status, (method, path, r.status)
        conn.close()
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as s:
        s.sendall(b"hello\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Big: " + b"y" * 20000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 431")
    # The endpoint still answers.
    samples, _ = scrape(broker)
    assert value(samples, "corelog_shard_up", shard=0) == 1
    try:
        urllib.request.urlopen(f"http://{host}:{port}/other", timeout=TIMEOUT_S)
        raise AssertionError("404 expected")
    except urllib.error.HTTPError as e:
        assert e.code == 404


def test_a_taken_metrics_port_is_a_clear_error_and_zero_turns_it_off(broker, tmp_path):
    other = Broker(tmp_path / "other", shards=1)
    out = subprocess.run([BINARY, "serve", "--data-dir", other.data_dir, "--port", str(other.port),
                          "--shards", "1", "--metrics-port", str(broker.metrics_port)],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0
    assert f"cannot listen for metrics on 127.0.0.1:{broker.metrics_port}" in out.stderr
    off = Broker(tmp_path / "off", shards=1, extra_args=["--metrics-port", "0"]).start()
    try:
        wait_until(lambda: "metrics off" in off.log(), TIMEOUT_S, "the startup banner")
        try:
            urllib.request.urlopen(off.metrics_url, timeout=TIMEOUT_S)
            raise AssertionError("metrics answered with --metrics-port 0")
        except urllib.error.URLError:
            pass
    finally:
        assert off.stop() == 0
