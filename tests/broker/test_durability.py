"""Data survives restarts: SIGTERM (clean) and SIGKILL (every acknowledged
record under fsync). Offsets stay contiguous; hot (cache) and cold (file)
reads return the same bytes. A second broker on the same data directory
and a taken port are refused with clear errors."""

import signal
import subprocess
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BINARY, Broker, free_port_range, wait_until

TIMEOUT_S = 60


def create(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result arrives
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def read_partition(bootstrap, topic, partition, count, **conf):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False, **conf})
    c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    got = []
    import time
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < count and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.append((m.offset(), m.key(), m.value()))
    c.close()
    return got


def test_100k_records_in_order_across_a_clean_restart(broker):
    topic = f"order-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(50_000):
        p.produce(topic, key=str(i).encode(), value=b"x" * 100, partition=0)
        if i % 10_000 == 0:
            p.poll(0)
    assert p.flush(TIMEOUT_S) == 0
    broker.restart()
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(50_000, 100_000):
        p.produce(topic, key=str(i).encode(), value=b"x" * 100, partition=0)
        if i % 10_000 == 0:
            p.poll(0)
    assert p.flush(TIMEOUT_S) == 0
    got = read_partition(broker.bootstrap, topic, 0, 100_000)
    assert [o for o, _, _ in got] == list(range(100_000))
    assert [k for _, k, _ in got] == [str(i).encode() for i in range(100_000)]


def test_every_acknowledged_record_survives_sigkill(make_broker):
    b = make_broker().start()
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    create(b.bootstrap, topic, 2)
    acked = []
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 1, "retries": 0,
                  "message.timeout.ms": 10_000})

    def delivered(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))

    for i in range(20_000):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 2, on_delivery=delivered)
        p.poll(0)
        if i == 15_000:
            p.flush(TIMEOUT_S)
            b.stop(signal.SIGKILL)
            break
    p.flush(5)
    assert len(acked) > 0
    b.start()
    for partition in range(2):
        mine = sorted((o, v) for (pp, o, v) in acked if pp == partition)
        got = read_partition(b.bootstrap, topic, partition, len(mine))
        stored = {o: v for o, _, v in got}
        for offset, value in mine:
            assert stored.get(offset) == value, f"acknowledged record {partition}/{offset} lost"
    assert b.stop() == 0


def test_hot_and_cold_reads_return_the_same_bytes(broker):
    topic = f"hotcold-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    values = [bytes([i % 251]) * 1000 for i in range(12_000)]  # 12 MB: beyond the 4 MiB cache
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=0)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(TIMEOUT_S) == 0
    hot_and_cold = read_partition(broker.bootstrap, topic, 0, len(values))
    assert "zero-copy fetch on" in broker.log()
    broker.restart()  # everything is cold now: spliced from the segment files
    spliced = read_partition(broker.bootstrap, topic, 0, len(values))
    broker.restart()  # cold again, to a client whose tiny receive buffer fills the socket
    spliced_slowly = read_partition(broker.bootstrap, topic, 0, len(values), **{"socket.receive.buffer.bytes": 4096})
    broker.extra_args = ["--zero-copy-fetch", "false"]
    broker.restart()  # cold again, read into memory and CRC-checked
    wait_until(lambda: "zero-copy fetch off" in broker.log(), TIMEOUT_S, "the startup banner")
    copied = read_partition(broker.bootstrap, topic, 0, len(values))
    assert [v for _, _, v in hot_and_cold] == values
    assert spliced == hot_and_cold
    assert spliced_slowly == hot_and_cold
    assert copied == hot_and_cold
    assert "zero-copy fetch unavailable" not in broker.log()


def test_a_cold_fetch_of_several_partitions_reads_them_ahead_and_returns_the_same_bytes(broker):
    """One consumer fetches four cold partitions (two per shard, so each
    response carries two partitions' file ranges): the ranges after a
    response's first are read ahead at once, and the bytes are those
    produced."""
    from test_metrics import scrape, total

    topic = f"ahead-{uuid.uuid4().hex[:8]}"
    partitions, per_partition = 4, 3000
    create(broker.bootstrap, topic, partitions)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    values = {q: [f"{q}-{i}-".encode() * 100 for i in range(per_partition)] for q in range(partitions)}
    for i in range(per_partition):
        for q in range(partitions):
            p.produce(topic, value=values[q][i], partition=q)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(TIMEOUT_S) == 0
    broker.restart()  # everything is cold: spliced from the segment files
    before, _ = scrape(broker)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, q, OFFSET_BEGINNING) for q in range(partitions)])
    got = {q: [] for q in range(partitions)}

    def read_all():
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got[m.partition()].append((m.offset(), m.value()))
        return all(len(got[q]) >= per_partition for q in range(partitions))

    wait_until(read_all, TIMEOUT_S, "every record of the four partitions")
    c.close()
    for q in range(partitions):
        assert got[q] == list(enumerate(values[q])), f"partition {q} read back as produced"
    after, _ = scrape(broker)

    def moved(name):
        return total(after, name) - total(before, name)

    assert moved("corelog_splice_read_ahead_hints_total") > 0, "responses with two partitions' cold ranges read the second ahead"
    assert moved("corelog_splice_read_ahead_failures_total") == 0, "the kernel took every hint"
    spliced = moved("corelog_splice_file_bytes_total")
    assert spliced >= sum(len(v) for vs in values.values() for v in vs), "every record's bytes were spliced"


def test_second_broker_on_the_same_data_dir_and_taken_ports_are_refused(broker, tmp_path):
    out = subprocess.run([BINARY, "serve", "--data-dir", broker.data_dir, "--port", str(broker.port + 10),
                          "--shards", "1"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0
    assert "in use by another corelog process" in out.stderr
    out = subprocess.run([BINARY, "serve", "--data-dir", str(tmp_path / "other"), "--port", str(broker.port),
                          "--shards", "1"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0
    assert f"cannot listen on 127.0.0.1:{broker.port}" in out.stderr


def test_a_controller_port_a_running_broker_holds_is_refused(broker, tmp_path):
    """The controller's port is not probed before startup (only the client
    ports are), and a node starting beside another is not seen by the
    probe: claiming the port must refuse one a running broker listens on,
    not share it (SO_REUSEPORT) and answer part of that broker's
    clients."""
    port = free_port_range(1)
    out = subprocess.run([BINARY, "serve", "--node-id", "1", "--controller-quorum", f"1@127.0.0.1:{broker.port}",
                          "--data-dir", str(tmp_path / "voter"), "--port", str(port), "--shards", "1",
                          "--metrics-port", "0"],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0, out.stderr
    assert f"cannot listen on 127.0.0.1:{broker.port}" in out.stderr, out.stderr


def test_unwritable_data_dir_is_a_clear_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a directory")
    b = Broker(target / "data", shards=1)
    out = subprocess.run([BINARY, "serve", "--data-dir", b.data_dir, "--port", str(b.port), "--shards", "1"],
                         capture_output=True, text=True, timeout=TIMEOUT_S)
    assert out.returncode != 0
    assert "data dir" in out.stderr


def test_a_low_memlock_limit_is_explained(tmp_path):
    b = Broker(tmp_path / "data", shards=1)
    cmd = (f"ulimit -l 64 && exec {BINARY} serve --data-dir {b.data_dir} --port {b.port} --shards 1 "
           f"--metrics-port {b.metrics_port}")
    proc = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Either it runs (the kernel accounts io_uring memory elsewhere) or it
        # fails; both ways the log says what the limit is and how to raise it.
        # The memlock line is among the first lines, before the banner.
        line = ""
        for _ in range(5):
            line = proc.stderr.readline()
            if "memlock" in line or not line:
                break
        assert "memlock limit is 0 MiB" in line and "ulimit -l" in line, line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(TIMEOUT_S)
