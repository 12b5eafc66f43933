"""Crash tests through real clients: the broker is SIGKILLed at seeded
random moments WHILE a confluent-kafka client works against it, then
restarted on the same data directory and ports, several times over.

- An idempotent producer (acks=all) produces continuously from a thread;
  each kill comes when the count of acknowledged records reaches a random
  threshold. Afterwards every acknowledged record is read back exactly
  once, at the offset its acknowledgement named, with its exact payload;
  offsets are contiguous per partition and nothing was invented. Records
  whose delivery failed may or may not be there (but not twice).
- A group member (a child process, static membership) commits offsets
  synchronously, one commit after another; each kill comes when the count
  of successful commits reaches a random threshold, and the member dies
  with the broker (a commit it still had queued would otherwise be sent
  after the restart and could hide a lost one). After every restart the
  committed offset of each partition is at least the last one whose commit
  returned success (and one that was actually sent), and the next member
  resumes exactly there.

The broker must die by our SIGKILL only: if it exits on its own (status
70 is a panicking shard) the test fails with its log.

CORELOG_CRASH_ROUNDS (default 5) is the number of kills per test: a larger
value makes a longer run (a soak or benchmark). CORELOG_CRASH_SEED picks
the kill thresholds, partitions, payloads and batch sizes; it is printed in
every failure message and in the summary line (pytest -s shows it). Every
wait is bounded and polls; nothing sleeps to synchronise."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
import zlib

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

SEED = int(os.environ.get("CORELOG_CRASH_SEED", "20251203"))
ROUNDS = int(os.environ.get("CORELOG_CRASH_ROUNDS", "5"))
TIMEOUT_S = 60
TAG = f"CORELOG_CRASH_SEED={SEED} CORELOG_CRASH_ROUNDS={ROUNDS}"
SHOWN = 20  # problems listed in a failure message (all are counted)


def fail(broker, message):
    tail = "".join(broker.stderr_lines[-200:])
    raise AssertionError(f"[{TAG}] {message}\n---- broker log (last 200 lines) ----\n{tail}")


def check_alive(broker, when):
    code = broker.proc.poll()
    if code is not None:
        fail(broker, f"the broker exited on its own with status {code} {when}")


def wait_for(broker, event, what, check, timeout_s=TIMEOUT_S):
    """Waits for `event` while the broker runs and `check()` (the client's
    own health) passes; fails with the broker log otherwise."""
    deadline = time.monotonic() + timeout_s
    while not event.wait(0.05):
        check_alive(broker, f"while waiting for {what}")
        check()
        if time.monotonic() > deadline:
            fail(broker, f"timed out after {timeout_s} s waiting for {what}")


def kill_and_restart(broker, when, also_kill=()):
    """SIGKILL (the broker must still be running; `also_kill` processes
    right after it), then a start on the same data directory and ports."""
    check_alive(broker, f"before kill {when}")
    broker.proc.kill()
    for proc in also_kill:
        proc.kill()
    code = broker.proc.wait(TIMEOUT_S)
    for proc in also_kill:
        proc.wait(TIMEOUT_S)
    if code != -signal.SIGKILL:
        fail(broker, f"the broker exited with status {code}, not by our SIGKILL, {when}")
    try:
        broker.start()
    except RuntimeError as e:
        fail(broker, f"the broker did not start again after kill {when}: {str(e)[:200]}")


def create(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result arrives
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def next_threshold(rng, low_exp, high_exp):
    """Log-uniform: often small (a kill while the clients are still
    retrying after the last restart), sometimes large."""
    return int(10 ** rng.uniform(low_exp, high_exp))


def payload(rid):
    """The value of record `rid`: its id, seeded random bytes of a seeded
    random length, and the CRC-32 of those bytes."""
    r = random.Random(SEED * 1_000_003 + rid)
    body = r.randbytes(r.randint(8, 700))
    return b"%d|" % rid + body + zlib.crc32(body).to_bytes(4, "big")


def describe_damage(rid, value):
    head, _, rest = value.partition(b"|")
    body, crc = rest[:-4], rest[-4:]
    if head != b"%d" % rid:
        return f"value names record {head[:30]!r}"
    if zlib.crc32(body).to_bytes(4, "big") != crc:
        return f"checksum mismatch ({len(value)} bytes, expected {len(payload(rid))})"
    return f"checksum fine but bytes differ ({len(value)} bytes, expected {len(payload(rid))})"


class ProducerLoop:
    """An idempotent producer producing from a thread until stopped; every
    delivery report is recorded, and `reached` is set once the count of
    acknowledged records reaches `target`."""

    def __init__(self, bootstrap, topic, partitions, rng):
        self.topic, self.partitions, self.rng = topic, partitions, rng
        self.errors = []  # fatal client errors and exceptions in the thread
        self.p = Producer({
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 2,
            # Longer than every restart: retried, not failed, in practice.
            "message.timeout.ms": 120_000,
            "reconnect.backoff.ms": 20,
            "reconnect.backoff.max.ms": 500,
            # Bounds what is queued while the broker is down (and the final flush).
            "queue.buffering.max.messages": 20_000,
            "error_cb": self.on_error,
        })
        self.sent = {}  # id -> partition, for every record produce() accepted
        self.acked = {}  # id -> (partition, offset) from its successful delivery report
        self.failed = {}  # id -> error from its failed delivery report
        self.reports_twice = []
        self.lock = threading.Lock()
        self.target = None
        self.reached = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_error(self, err):
        if err.fatal():
            self.errors.append(f"fatal producer error: {err}")

    def delivered(self, err, msg):
        rid = int(msg.key())
        if rid in self.acked or rid in self.failed:
            self.reports_twice.append(rid)
        if err is None:
            with self.lock:
                self.acked[rid] = (msg.partition(), msg.offset())
                if self.target is not None and len(self.acked) >= self.target:
                    self.reached.set()
        else:
            self.failed[rid] = str(err)

    def aim(self, more):
        """`reached` will be set after `more` further acknowledgements."""
        with self.lock:
            self.target = len(self.acked) + more
            self.reached.clear()

    def close(self):
        """Stops the thread and destroys the producer (no client left
        reconnecting to this broker's ports during later tests)."""
        self.stop.set()
        self.thread.join(TIMEOUT_S)
        if not self.thread.is_alive() and self.p is not None:
            self.p.purge()
            self.p = None

    def run(self):
        try:
            rid = 0
            while not self.stop.is_set():
                partition = self.rng.randrange(self.partitions)
                value = payload(rid)
                while not self.stop.is_set():
                    try:
                        self.p.produce(self.topic, key=b"%d" % rid, value=value, partition=partition,
                                       on_delivery=self.delivered)
                        break
                    except BufferError:  # queue full (the broker is down): serve reports, wait for room
                        self.p.poll(0.05)
                else:
                    break
                self.sent[rid] = partition
                rid += 1
                self.p.poll(0)
        except BaseException:
            self.errors.append(traceback.format_exc())


def read_everything(broker, topic, partitions):
    """{partition: [(offset, key, value)]} from the low to the high watermark."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"crash-check-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    marks = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S) for p in range(partitions)}
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    done = {p for p, (low, high) in marks.items() if high <= low}
    deadline = time.monotonic() + TIMEOUT_S
    while len(done) < partitions and time.monotonic() < deadline:
        check_alive(broker, "while reading back")
        for m in c.consume(1000, 0.5):
            if m.error() is not None:
                fail(broker, f"consumer error while reading back: {m.error()}")
            got[m.partition()].append((m.offset(), m.key(), m.value()))
            if m.offset() >= marks[m.partition()][1] - 1:
                done.add(m.partition())
    # Nothing beyond the high watermarks either.
    extra = c.consume(1000, 1.0)
    c.close()
    if len(done) < partitions:
        fail(broker, f"timed out reading back: partitions {sorted(set(range(partitions)) - done)} short of "
                     f"their high watermarks {marks}")
    if extra:
        fail(broker, f"{len(extra)} records past the high watermarks {marks}")
    return marks, got


def test_acknowledged_records_survive_sigkills_while_producing(make_broker):
    rng = random.Random(SEED)
    partitions = 4
    b = make_broker().start()
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    create(b.bootstrap, topic, partitions)
    loop = ProducerLoop(b.bootstrap, topic, partitions, random.Random(rng.random()))

    def producer_ok():
        if loop.errors:
            fail(b, "producer errors:\n" + "\n".join(loop.errors))

    started = time.monotonic()
    loop.thread.start()
    try:
        for round_ in range(1, ROUNDS + 1):
            more = next_threshold(rng, 0.5, 4.3)  # 3 to 20,000 acknowledgements
            loop.aim(more)
            wait_for(b, loop.reached, f"{more} more acknowledgements before kill {round_}", producer_ok)
            kill_and_restart(b, f"{round_} (after {len(loop.acked)} acknowledgements)")
        # A last batch after the last restart, so that it is used, then stop.
        loop.aim(next_threshold(rng, 0.5, 3))
        wait_for(b, loop.reached, "acknowledgements after the last restart", producer_ok)
        loop.stop.set()
        loop.thread.join(TIMEOUT_S)
        assert not loop.thread.is_alive(), f"[{TAG}] the producer thread did not stop"
        left = loop.p.flush(TIMEOUT_S)
        check_alive(b, "during the final flush")
        if loop.errors:
            fail(b, "producer errors:\n" + "\n".join(loop.errors))
        if left:
            fail(b, f"{left} records still unacknowledged {TIMEOUT_S} s after the producer stopped")
        unreported = set(loop.sent) - set(loop.acked) - set(loop.failed)
        assert not unreported, f"[{TAG}] {len(unreported)} records without a delivery report"
        assert not loop.reports_twice, f"[{TAG}] two delivery reports for records {loop.reports_twice[:SHOWN]}"
    finally:
        loop.close()
    # One more kill, idle this time: what is read back comes from recovery.
    kill_and_restart(b, "after the final flush")

    marks, got = read_everything(b, topic, partitions)
    problems = []
    found = {}  # id -> [(partition, offset)]
    for p, records in got.items():
        offsets = [o for o, _, _ in records]
        low, high = marks[p]
        if any(x >= y for x, y in zip(offsets, offsets[1:])):
            problems.append(f"partition {p}: offsets not strictly increasing")
        if offsets != list(range(low, high)):
            missing = sorted(set(range(low, high)) - set(offsets))
            problems.append(f"partition {p}: offsets not contiguous from {low} to {high}: {len(offsets)} read, "
                            f"missing {missing[:SHOWN]}")
        for offset, key, value in records:
            try:
                rid = int(key)
            except (TypeError, ValueError):
                problems.append(f"{p}/{offset}: key {key!r} was never sent")
                continue
            if rid not in loop.sent:
                problems.append(f"{p}/{offset}: record {rid} was never sent")
                continue
            if loop.sent[rid] != p:
                problems.append(f"{p}/{offset}: record {rid} was sent to partition {loop.sent[rid]}")
            if value != payload(rid):
                problems.append(f"{p}/{offset}: record {rid}: {describe_damage(rid, value)}")
            found.setdefault(rid, []).append((p, offset))
    lost, moved = [], []
    for rid, at in loop.acked.items():
        where = found.get(rid, [])
        if not where:
            lost.append(f"{rid} (acknowledged at {at[0]}/{at[1]})")
        elif at not in where:
            moved.append(f"{rid} acknowledged at {at[0]}/{at[1]}, found at {where}")
    twice = {rid: at for rid, at in found.items() if len(at) > 1}
    twice_acked = [f"{rid} at {at}" for rid, at in twice.items() if rid in loop.acked]
    twice_other = [f"{rid} at {at}" for rid, at in twice.items() if rid not in loop.acked]
    failed_present = sum(1 for rid in loop.failed if rid in found)
    summary = (f"{ROUNDS} kills while producing in {time.monotonic() - started:.1f} s: "
               f"{len(loop.sent)} sent, {len(loop.acked)} acknowledged (all checked), "
               f"{len(loop.failed)} failed ({failed_present} of them present), "
               f"{sum(len(r) for r in got.values())} read back, {len(twice)} duplicated")
    print(f"[{TAG}] {summary}")
    found_wrong = [f"{len(items)} {name}: {items[:SHOWN]}" for name, items in [
        ("acknowledged records lost", lost),
        ("acknowledged records at another offset", moved),
        ("acknowledged records present more than once", twice_acked),
        ("unacknowledged records present more than once", twice_other),
        ("problems with offsets or records", problems)] if items]
    if found_wrong:
        fail(b, summary + "\n" + "\n".join(found_wrong))
    if loop.failed:
        print(f"[{TAG}] failed deliveries (allowed): {sorted(set(loop.failed.values()))}")
    assert b.stop() == 0, f"[{TAG}] the broker did not stop cleanly after the kills"


# A group member in a child process, so that it dies with the broker: a
# commit still waiting for the coordinator would otherwise be sent again
# after the restart and could hide a lost one. It consumes a seeded random
# 1-20 records at a time and commits the next offsets synchronously,
# reporting on stdout: `first P O` (the first record it read from P),
# `try P:O ...` before each commit, `ok P:O ...` for each partition whose
# commit returned success, `fail ERROR`, `fatal ERROR`.
MEMBER = r"""
import os, random, sys
from confluent_kafka import Consumer, KafkaException, TopicPartition
bootstrap, group, instance, topic, seed, parent = sys.argv[1:7]
rng = random.Random(int(seed))
def say(*words):
    print(*words, flush=True)
def on_error(err):
    if err.fatal():
        say("fatal", str(err).replace("\n", " "))
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "group.instance.id": instance,
              "enable.auto.commit": False, "auto.offset.reset": "earliest",
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
              "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 500,
              # Small fetches: every partition is read from early on, not one after another.
              "queued.min.messages": 200, "max.partition.fetch.bytes": 4096, "error_cb": on_error})
c.subscribe([topic])
position, committed = {}, {}
ok = True
while os.getppid() == int(parent):  # never outlives the test
    for m in c.consume(rng.randint(1, 20) if ok else 1, 0.1):
        if m.error() is not None:
            if m.error().fatal():
                say("fatal", str(m.error()).replace("\n", " "))
            continue
        p, o = m.partition(), m.offset()
        if p not in position:
            say("first", p, o)
        position[p] = o + 1
    offsets = [TopicPartition(topic, p, o) for p, o in sorted(position.items()) if o > committed.get(p, -1)]
    if not offsets:
        ok = True
        continue
    say("try", *[f"{tp.partition}:{tp.offset}" for tp in offsets])
    try:
        result = c.commit(offsets=offsets, asynchronous=False)
    except KafkaException as e:
        say("fail", e.args[0].name())
        ok = False
        continue
    good = [tp for tp in result if tp.error is None]
    ok = len(good) == len(result)
    for tp in good:
        committed[tp.partition] = tp.offset
    if good:
        say("ok", *[f"{tp.partition}:{tp.offset}" for tp in good])
    if not ok:
        say("fail", *sorted({tp.error.name() for tp in result if tp.error is not None}))
"""


class Commits:
    """What the members reported, across their lives: `reached` is set once
    the count of successful commits reaches `target`."""

    def __init__(self, partitions):
        self.last_success = {}  # partition -> highest offset whose commit returned success
        self.attempted = {p: set() for p in range(partitions)}  # every offset ever sent in a commit
        self.successes = self.failures = 0
        self.failure_kinds = set()
        self.errors = []
        self.lock = threading.Lock()
        self.target = None
        self.reached = threading.Event()

    def aim(self, more):
        with self.lock:
            self.target = self.successes + more
            self.reached.clear()

    def snapshot(self):
        with self.lock:
            return dict(self.last_success)


class Member:
    """One life of the member: a child process and the thread reading it."""

    def __init__(self, broker, group, instance, topic, seed, commits, log_path):
        self.commits = commits
        self.first = {}  # partition -> first offset read in this life
        self.all_first = threading.Event()
        self.partitions = len(commits.attempted)
        self.log_path = log_path
        self.stderr = open(log_path, "w")
        args = [broker.bootstrap, group, instance, topic, str(seed), str(os.getpid())]
        self.proc = subprocess.Popen([sys.executable, "-c", MEMBER, *args], stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        c = self.commits
        try:
            for line in self.proc.stdout:
                word, *rest = line.split()
                if word == "first":
                    self.first[int(rest[0])] = int(rest[1])
                    if len(self.first) == self.partitions:
                        self.all_first.set()
                    continue
                pairs = [tuple(map(int, w.split(":"))) for w in rest] if word in ("try", "ok") else []
                with c.lock:
                    if word == "try":
                        for p, o in pairs:
                            c.attempted[p].add(o)
                    elif word == "ok":
                        for p, o in pairs:
                            c.last_success[p] = max(o, c.last_success.get(p, -1))
                        c.successes += 1
                        if c.target is not None and c.successes >= c.target:
                            c.reached.set()
                    elif word == "fail":
                        c.failures += 1
                        c.failure_kinds.update(rest)
                    else:
                        c.errors.append(line.strip())
        except BaseException:
            c.errors.append(traceback.format_exc())

    def log(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.log_path) as f:
            return f.read()[-3000:]

    def finish(self):
        """After the process ended: every line it wrote has been read."""
        self.proc.wait(TIMEOUT_S)
        self.reader.join(TIMEOUT_S)
        self.stderr.close()
        assert not self.reader.is_alive(), f"[{TAG}] the member's output was not closed"


def committed_offsets(broker, group, topic, partitions):
    """The group's committed offsets, read by a fresh consumer of the group
    (not subscribed: it does not join). Retried while the coordinator loads."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    deadline = time.monotonic() + TIMEOUT_S
    last = None
    try:
        while time.monotonic() < deadline:
            check_alive(broker, "while reading committed offsets")
            try:
                tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
            except KafkaException as e:
                last = e
            else:
                errors = [tp.error for tp in tps if tp.error is not None]
                if not errors:
                    return {tp.partition: tp.offset for tp in tps}
                last = errors
            time.sleep(0.05)  # polling interval, as in conftest.wait_until
    finally:
        c.close()
    fail(broker, f"could not read the committed offsets of {group}: {last}")


def check_committed(broker, commits, committed, reference, when):
    """Each partition's committed offset is at least the last one whose
    commit returned success, and one that some commit actually sent."""
    problems = []
    for q, have in sorted(committed.items()):
        if q in reference and have < reference[q]:
            problems.append(f"partition {q}: committed {have}, but the commit of {reference[q]} had succeeded")
        if have != -1001 and have not in commits.attempted[q]:
            problems.append(f"partition {q}: committed {have}, an offset never committed")
    if problems:
        fail(broker, f"{when}: committed offsets {committed}, last successful commits {reference}: {problems}")


def test_successful_commits_survive_sigkills_while_committing(make_broker, tmp_path):
    rng = random.Random(SEED + 1)
    partitions = 3
    b = make_broker().start()
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    group = f"crash-g-{uuid.uuid4().hex[:8]}"
    instance = f"crash-member-{SEED}"
    create(b.bootstrap, topic, partitions)
    # Enough records that the member never runs out: at most 20 read per
    # commit, at most 200 successful commits a round, plus slack.
    records = (ROUNDS + 2) * 5_000
    # Small batches, so that small fetches interleave the partitions.
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, "batch.num.messages": 20})
    deadline = time.monotonic() + TIMEOUT_S
    for i in range(records):
        while True:
            try:
                p.produce(topic, value=b"%d" % i, partition=i % partitions)
                break
            except BufferError:  # the queue is full: wait for deliveries
                assert time.monotonic() < deadline, f"[{TAG}] producing {records} records took over {TIMEOUT_S} s"
                p.poll(0.05)
        p.poll(0)
    assert p.flush(TIMEOUT_S) == 0
    del p

    commits = Commits(partitions)
    started = time.monotonic()
    committed = {q: -1001 for q in range(partitions)}  # none yet
    history = []
    m = None

    def member_ok():
        if commits.errors:
            fail(b, f"member errors: {commits.errors}\n{m.log()}")
        if m.proc.poll() is not None:
            fail(b, f"the member exited on its own with status {m.proc.returncode}:\n{m.log()}")

    def check_resumed(life):
        """The member resumed where the group's committed offsets say (from
        the beginning where none): never below a successful commit."""
        expected = {q: max(committed[q], 0) for q in m.first}
        if dict(m.first) != expected:
            fail(b, f"life {life}: the member resumed at {m.first}, the committed offsets are {committed}")

    try:
        for life in range(ROUNDS):
            m = Member(b, group, instance, topic, rng.randrange(2**32), commits, tmp_path / f"member{life}.log")
            more = next_threshold(rng, 0, 2.3)  # 1 to 200 successful commits
            commits.aim(more)
            wait_for(b, commits.reached, f"{more} more successful commits before kill {life + 1}", member_ok)
            # The member dies with the broker: nothing is committed between
            # the restart and the check below.
            kill_and_restart(b, f"{life + 1} (after {commits.successes} successful commits)", also_kill=[m.proc])
            m.finish()
            check_resumed(life)
            reference = commits.snapshot()
            committed = committed_offsets(b, group, topic, partitions)
            history.append((committed, reference))
            check_committed(b, commits, committed, reference, f"after kill {life + 1}")
        # A last member only resumes.
        m = Member(b, group, instance, topic, rng.randrange(2**32), commits, tmp_path / f"member{ROUNDS}.log")
        wait_for(b, m.all_first, "the last member's first record of each partition", member_ok)
        check_resumed(ROUNDS)
    finally:
        if m is not None and m.proc.poll() is None:
            m.proc.kill()
            m.finish()
    if commits.errors:
        fail(b, f"member errors: {commits.errors}")
    summary = (f"[{TAG}] {ROUNDS} kills while committing in {time.monotonic() - started:.1f} s: "
               f"{commits.successes} successful commits, {commits.failures} failed "
               f"({sorted(commits.failure_kinds)}); after each restart committed / last successful: "
               + ", ".join(f"{c}/{r}" for c, r in history))
    print(summary)
    assert b.stop() == 0, f"[{TAG}] the broker did not stop cleanly after the kills"
