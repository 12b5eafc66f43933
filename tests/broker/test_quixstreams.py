"""A stream-processing library's exactly-once mode against Corelog:
quixstreams (`processing_guarantee="exactly-once"`) counting per key with
its state in a changelog topic, SIGKILLed mid-checkpoint and restarted on
an empty state directory. Every input's count is readable exactly once
by read_committed, and each is the exact count: no input counted twice
or lost, in the output or in the restored state."""

import json
import os
import signal
import subprocess
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import wait_until
from test_transactions import TIMEOUT_S, create

HERE = os.path.dirname(os.path.abspath(__file__))
QUIX_PYTHON = os.path.join(HERE, "..", "..", ".venv", "quix", "bin", "python")
INPUTS = 1000
KEYS = 10
# Seq of the input the first run dies counting: well past its first
# checkpoints (every 100 inputs), in the middle of one.
DIE_AT = 650


def read_committed_to_end(bootstrap, topic, partitions):
    """Every record of `topic` below its last stable offset, read as a
    read_committed consumer: (key, seq, n) each."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
    ends = [c.get_watermark_offsets(tp, timeout=TIMEOUT_S)[1] for tp in tps]
    c.assign(tps)
    got = []

    def at_end():
        for m in c.consume(500, 0.2):
            if m.error() is None:
                v = json.loads(m.value())
                got.append((m.key().decode(), v["seq"], v["n"]))
        return all(c.position([tp])[0].offset >= end for tp, end in zip(tps, ends) if end > 0)

    wait_until(at_end, TIMEOUT_S, f"{topic} read to its last stable offset {ends}")
    c.close()
    return got


def test_quixstreams_exactly_once_counts_survive_a_sigkill(broker, tmp_path):
    assert os.path.exists(QUIX_PYTHON), "quixstreams' virtualenv is missing: run ci/install"
    src, dst = f"qsrc-{uuid.uuid4().hex[:8]}", f"qdst-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, src, 2)
    create(broker.bootstrap, dst, 2)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    expected = []
    seen = {}
    for i in range(INPUTS):
        key = f"k{i % KEYS}"
        seen[key] = seen.get(key, 0) + 1
        expected.append((key, i, seen[key]))
        plain.produce(src, key=key, value=json.dumps({"seq": i}), partition=(i % KEYS) % 2)
    assert plain.flush(TIMEOUT_S) == 0

    def app(state, *extra):
        args = [QUIX_PYTHON, os.path.join(HERE, "quix_app.py"), broker.bootstrap, src, dst,
                f"g-{src}", str(tmp_path / state), *extra]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = app("state-1", str(DIE_AT))
    try:
        rc = first.wait(TIMEOUT_S)
        assert rc == -signal.SIGKILL, f"the first run ended with {rc}: {first.stdout.read()}"
    finally:
        first.kill()
    second = app("state-2")
    try:
        got = []

        def counted():
            got[:] = read_committed_to_end(broker.bootstrap, dst, 2)
            return len(got) >= INPUTS

        wait_until(counted, TIMEOUT_S, "every input counted")
        second.send_signal(signal.SIGTERM)
        assert second.wait(TIMEOUT_S) == 0, second.stdout.read()
    finally:
        second.kill()
    # Read again once the app stopped: nothing more came, nothing twice.
    assert sorted(read_committed_to_end(broker.bootstrap, dst, 2)) == sorted(expected)
