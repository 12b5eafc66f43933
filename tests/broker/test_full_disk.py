"""A full disk on a real file system: a 300 MiB ext4 image, loop-mounted,
holds the data directory of a 2-shard broker, and a filler file leaves only
a little more than the broker's free-space margin
(FREE_SPACE_MARGIN_BYTES, 64 MiB: engine/src/limits.rs) free.

Producing to both partitions (one per shard) then gets KAFKA_STORAGE_ERROR
and nothing else; the log holds exactly the acknowledged records, intact,
and serves them while the disk is full; no partition goes offline
(`corelog_partition_offline`, the log); once the filler is deleted produces
succeed again on both partitions without a restart; and a clean restart
keeps every acknowledged record, before and after the full disk.

Needs root (mount); skipped with the reason when the tools or the mount
are missing. Every wait is bounded; sleeps only pace polling."""

import hashlib
import os
import random
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

TIMEOUT_S = 60
MiB = 1024 * 1024
IMAGE_BYTES = 300 * MiB
# engine/src/limits.rs FREE_SPACE_MARGIN_BYTES.
MARGIN_BYTES = 64 * MiB
# Free space left beside the filler: the margin plus room for ~300 records.
ROOM_BYTES = 30 * MiB
VALUE_BYTES = 100_000
# How far from the margin free space may be when produces are refused: a
# record and its alignment above it, index files and metadata below it.
SLACK_BYTES = 4 * MiB
# Produced at most while filling the disk: 200 MB, over twice the room.
MAX_MESSAGES = 2_000
# Records per partition produced at once after space came back.
ROUND = 5
# How long produces may keep failing once the filler is deleted.
RESUME_TIMEOUT_S = 30
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def free_bytes(path):
    """What the broker counts as free: statvfs f_bavail (engine/src/disk/dma.rs)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def run(args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.fixture
def small_fs(tmp_path):
    """A fresh 300 MiB ext4 file system (no reserved blocks) mounted on a
    loop device; unmounted at the end. Request it before `make_broker` so
    that the brokers are stopped (torn down first) before the unmount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop file system needs root")
    mkfs = shutil.which("mkfs.ext4", path=SBIN_PATH)
    mount = shutil.which("mount", path=SBIN_PATH)
    umount = shutil.which("umount", path=SBIN_PATH)
    if not (mkfs and mount and umount):
        pytest.skip(f"mkfs.ext4 (Debian: e2fsprogs) or mount/umount missing: {mkfs} {mount} {umount}")
    image = tmp_path / "fs.img"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(IMAGE_BYTES)
    r = run([mkfs, "-q", "-F", "-m", "0", image])
    assert r.returncode == 0, f"mkfs.ext4 failed: {r.stderr}"
    r = run([mount, "-o", "loop", image, mnt])
    if r.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image here (no loop devices or not permitted): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        r = run([umount, mnt])
        if r.returncode != 0:
            # Never leave a mount behind in the tmp dir; still fail the test.
            run([umount, "-l", mnt])
            pytest.fail(f"umount failed: {r.stderr}")


def value_of(key):
    """100 KB of incompressible bytes determined by the key."""
    return random.Random(key).randbytes(VALUE_BYTES)


def digest(b):
    return hashlib.sha256(b).hexdigest()


class Producing:
    """A producer that records every delivery report: acknowledged records
    as {(partition, offset): (key, sha256 of value)}, errors as
    [(partition, key, KafkaError)]."""

    def __init__(self, bootstrap, topic):
        self.topic = topic
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            # A refused batch is reported, not retried behind our back.
            "retries": 0,
            "linger.ms": 5,
            "message.timeout.ms": TIMEOUT_S * 1000,
        })
        self.acked = {}
        self.errors = []
        self.sent = 0
        self.seq = 0

    def send(self, partition):
        """Produces one keyed 100 KB record to `partition`; returns the key."""
        key = f"k{self.seq:06d}-p{partition}".encode()
        self.seq += 1
        value = value_of(key)
        dig = digest(value)

        def delivered(err, msg):
            if err is None:
                assert (msg.partition(), msg.offset()) not in self.acked
                self.acked[(msg.partition(), msg.offset())] = (msg.key(), dig)
            else:
                self.errors.append((msg.partition(), msg.key(), err))

        self.producer.produce(self.topic, key=key, value=value, partition=partition, on_delivery=delivered)
        self.sent += 1
        self.producer.poll(0)
        return key

    def flush(self):
        """Waits for every delivery report (bounded)."""
        left = self.producer.flush(TIMEOUT_S)
        assert left == 0, f"{left} deliveries not reported within {TIMEOUT_S} s"


def read_all(bootstrap, topic, partitions):
    """Every record of the topic, from offset 0 to each high watermark:
    {(partition, offset): (key, sha256 of value)}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    try:
        got = {}
        for p in range(partitions):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)
            assert low == 0, f"partition {p} starts at {low}"
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
            offsets = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(offsets) < high and time.monotonic() < deadline:
                for m in c.consume(100, 0.5):
                    assert m.error() is None, m.error()
                    assert len(m.value()) == VALUE_BYTES, (p, m.offset(), len(m.value()))
                    offsets.append(m.offset())
                    got[(p, m.offset())] = (m.key(), digest(m.value()))
            assert offsets == list(range(high)), f"partition {p}: read {len(offsets)} of {high} records in order"
        return got
    finally:
        c.close()


def offline_gauges(broker, topic, partitions):
    """corelog_partition_offline of each partition of the topic, scraped."""
    with urllib.request.urlopen(broker.metrics_url, timeout=TIMEOUT_S) as r:
        text = r.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "corelog_partition_offline" and s.labels.get("topic") == topic:
                found[int(s.labels["partition"])] = s.value
    assert sorted(found) == list(range(partitions)), f"offline gauges: {found}"
    return found


def assert_same_records(got, acked, when):
    missing = sorted(set(acked) - set(got))
    extra = sorted(set(got) - set(acked))
    damaged = sorted(k for k in set(got) & set(acked) if got[k] != acked[k])
    assert not missing and not extra and not damaged, (
        f"{when}: {len(missing)} acknowledged records missing {missing[:5]}, "
        f"{len(extra)} never acknowledged {extra[:5]}, {len(damaged)} damaged {damaged[:5]}")


def test_a_full_disk_refuses_produces_keeps_reads_and_recovers_without_restart(small_fs, make_broker):
    b = make_broker(shards=2, data_dir=small_fs / "data").start()
    pid = b.proc.pid
    topic = f"full-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(TIMEOUT_S)
    leaders = {p.id: p.leader for p in admin.list_topics(topic, timeout=TIMEOUT_S).topics[topic].partitions.values()}
    assert sorted(leaders) == [0, 1] and len(set(leaders.values())) == 2, f"one partition per shard: {leaders}"

    # Leave the margin plus ROOM_BYTES free.
    filler = small_fs / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, free_bytes(small_fs) - MARGIN_BYTES - ROOM_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)
    left = free_bytes(small_fs)
    assert MARGIN_BYTES + ROOM_BYTES // 2 < left < MARGIN_BYTES + 2 * ROOM_BYTES, f"{left} bytes free"

    # Fill: rounds of one record per partition (one request each) until a
    # round is refused on both partitions. Then not even one record fits, so
    # a record accepted later proves that space came back.
    prod = Producing(b.bootstrap, topic)
    full = False
    while prod.sent < MAX_MESSAGES:
        errors_before, acked_before = len(prod.errors), len(prod.acked)
        for p in (0, 1):
            prod.send(p)
        prod.flush()
        others = [(p, k, e) for p, k, e in prod.errors if e.code() != KafkaError.KAFKA_STORAGE_ERROR]
        assert not others, f"errors other than KAFKA_STORAGE_ERROR: {others[:5]}"
        if len(prod.errors) - errors_before == 2 and len(prod.acked) == acked_before:
            full = True
            break
    assert full, (f"{prod.sent} records of {VALUE_BYTES} bytes produced to a disk with {left} bytes free, "
                  f"no round refused: {len(prod.acked)} acknowledged, {len(prod.errors)} refused")
    assert b.proc.poll() is None and b.proc.pid == pid, "the broker died:\n" + b.log()
    for p in (0, 1):
        assert any(q == p for q, _ in prod.acked), f"nothing acknowledged on partition {p} before the disk filled"
        assert any(q == p for q, _, _ in prod.errors), f"nothing refused on partition {p}"
    # Refused at the margin: not at a truly full disk, nor far before it.
    assert MARGIN_BYTES - SLACK_BYTES < free_bytes(small_fs) < MARGIN_BYTES + SLACK_BYTES, \
        f"{free_bytes(small_fs)} bytes free when refused, margin {MARGIN_BYTES}"
    acked_full = dict(prod.acked)

    # Reads work on the full disk: exactly the acknowledged records, intact.
    assert_same_records(read_all(b.bootstrap, topic, 2), acked_full, "full disk")
    assert offline_gauges(b, topic, 2) == {0: 0, 1: 0}

    # Still full after the reads: one record per partition is refused.
    errors_before, acked_before = len(prod.errors), len(prod.acked)
    for p in (0, 1):
        prod.send(p)
    prod.flush()
    assert len(prod.acked) == acked_before, "a record was accepted on the full disk"
    refused = sorted((p, e.code()) for p, _, e in prod.errors[errors_before:])
    assert refused == [(0, KafkaError.KAFKA_STORAGE_ERROR), (1, KafkaError.KAFKA_STORAGE_ERROR)], refused

    # Free space; produces resume by themselves on both partitions.
    os.remove(filler)
    for p in (0, 1):
        deadline = time.monotonic() + RESUME_TIMEOUT_S
        while True:
            acked_before = len(prod.acked)
            prod.send(p)
            prod.flush()
            others = [(q, k, e) for q, k, e in prod.errors if e.code() != KafkaError.KAFKA_STORAGE_ERROR]
            assert not others, f"errors other than KAFKA_STORAGE_ERROR: {others[:5]}"
            if len(prod.acked) > acked_before:
                break
            assert time.monotonic() < deadline, (
                f"partition {p} still refuses produces {RESUME_TIMEOUT_S} s after the filler was deleted "
                f"({free_bytes(small_fs)} bytes free)")
            time.sleep(0.2)
    # Once resumed, everything is accepted.
    errors_before = len(prod.errors)
    for _ in range(ROUND):
        for p in (0, 1):
            prod.send(p)
    prod.flush()
    assert prod.errors[errors_before:] == [], prod.errors[errors_before:]
    assert b.proc.poll() is None and b.proc.pid == pid, "the broker restarted or died:\n" + b.log()
    assert len(prod.acked) > len(acked_full)
    acked = dict(prod.acked)
    assert_same_records(read_all(b.bootstrap, topic, 2), acked, "after space returned")
    assert offline_gauges(b, topic, 2) == {0: 0, 1: 0}

    # A clean stop and a restart on the same data keep every record.
    code = b.stop()
    assert code == 0, "broker did not stop cleanly:\n" + b.log()
    b.start()
    assert_same_records(read_all(b.bootstrap, topic, 2), acked, "after a restart")
    assert offline_gauges(b, topic, 2) == {0: 0, 1: 0}

    offline = [line for line in b.log().splitlines() if "offline" in line.lower()]
    assert not offline, "a partition went offline:\n" + "\n".join(offline)
    assert "disk full" in b.log(), "the refusals are said in the log"
    code = b.stop()
    assert code == 0, "broker did not stop cleanly:\n" + b.log()
