"""A queue checker in the spirit of Jepsen's: producers record every
acknowledged (partition, offset, value), consumers record everything they
read, and at the end every acknowledged value must be read, at its
acknowledged offset, exactly once; no offset may hold two different values
across readers or time; nothing a consumer read (below a high watermark)
may later disappear.

Real clients (confluent-kafka, librdkafka), each in its own thread; every
wait is bounded."""

import logging
import os
import sys
import threading
import time
import traceback
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import wait_until


# A request to a SIGSTOPped node (the metadata request librdkafka happened
# to send there, produce requests in flight) is answered only once the
# node resumes, or after librdkafka's socket.timeout.ms (60 s by default):
# what a frozen Kafka broker costs its clients too. The checker's clients
# give up after 10 s, so a round's wait for acknowledgments measures the
# cluster's failover rather than that timeout.
CLIENT_TIMEOUTS = {"socket.timeout.ms": 10000}

# How long the live consumer's close may take before the checker goes on.
CLOSE_TIMEOUT_S = 30


class Checker:
    def __init__(self, bootstrap, topic, partitions):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.acked = {}        # value -> (partition, offset)
        self.failed = {}       # value -> error (never acknowledged)
        self.read = {}         # (partition, offset) -> value, by the live consumer
        self.conflicts = []    # (partition, offset, value, other value)
        self.sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.notes = []        # client misbehaviour worth a line in the verdict

    # The live producer and consumer.

    def start(self):
        for name, run in (("checker-producer", self._produce), ("checker-consumer", self._consume)):
            t = threading.Thread(target=run, name=name, daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _produce(self):
        def done(err, msg):
            value = msg.value().decode()
            with self.lock:
                if err is None:
                    self.acked[value] = (msg.partition(), msg.offset())
                else:
                    self.failed[value] = str(err)

        config = {"bootstrap.servers": self.bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 2,
                  "message.timeout.ms": 120000, **CLIENT_TIMEOUTS}
        # CORELOG_CHECKER_LOG=FILE: the producer's idempotence and
        # leadership events (librdkafka's `eos,topic` debug), for a run
        # to investigate.
        if os.environ.get("CORELOG_CHECKER_LOG"):
            log = logging.getLogger("checker.producer")
            handler = logging.FileHandler(os.environ["CORELOG_CHECKER_LOG"])
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.DEBUG)
            config.update({"debug": "eos,topic", "logger": log})
        p = Producer(config)
        seq = 0
        while not self.stopping.is_set():
            value = f"v{seq}"
            p.produce(self.topic, value.encode(), partition=seq % self.partitions, on_delivery=done)
            self.sent = seq = seq + 1
            p.poll(0.002)
            # Bounded backlog: wait for deliveries rather than queue more.
            while len(p) > 2000 and not self.stopping.is_set():
                p.poll(0.05)
        remaining = p.flush(150)
        assert remaining == 0, f"{remaining} records neither delivered nor failed"

    def _consume(self):
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"chk-{uuid.uuid4().hex[:6]}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest", **CLIENT_TIMEOUTS})
        c.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        try:
            while not self.stopping.is_set():
                for m in c.consume(1000, timeout=0.2):
                    if m.error() is None:
                        self._note(self.read, m.partition(), m.offset(), m.value().decode())
        finally:
            # librdkafka's consumer close has no timeout, and twice in
            # some thousand rounds it did not return: what the consumer
            # read is kept either way; the verdict says so.
            closer = threading.Thread(target=c.close, name="checker-consumer-close", daemon=True)
            closer.start()
            closer.join(CLOSE_TIMEOUT_S)
            if closer.is_alive():
                self.notes.append(f"the live consumer's close() did not return within {CLOSE_TIMEOUT_S} s")

    def _note(self, into, partition, offset, value):
        with self.lock:
            seen = into.setdefault((partition, offset), value)
            if seen != value:
                self.conflicts.append((partition, offset, value, seen))

    def acked_count(self):
        with self.lock:
            return len(self.acked)

    def wait_acked_past(self, count, timeout_s, what):
        wait_until(lambda: self.acked_count() > count, timeout_s, what)

    # The end.

    def stop(self, timeout_s=200):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout_s)
            if t.is_alive():
                stack = "".join(traceback.format_stack(sys._current_frames()[t.ident]))
                raise AssertionError(f"{t.name} did not finish within {timeout_s} s; it is at:\n{stack}")

    def final_read(self, timeout_s=120):
        """Everything each partition holds, from offset 0 to its end."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"fin-{uuid.uuid4().hex[:6]}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        ends = {}
        for p in range(self.partitions):
            _, high = c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=30)
            ends[p] = high
        c.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        final = {}
        deadline = time.monotonic() + timeout_s

        def done():
            return all(sum(1 for (q, o) in final if q == p and o < ends[p]) >= count_below(p)
                       for p in range(self.partitions))

        def count_below(p):
            # Compacted or not, a fresh topic has every offset below its end.
            return ends[p]

        try:
            while not done():
                assert time.monotonic() < deadline, f"final read incomplete: {ends}"
                for m in c.consume(1000, timeout=0.5):
                    if m.error() is None:
                        self._note(final, m.partition(), m.offset(), m.value().decode())
        finally:
            c.close()
        return final, ends

    def verdict(self, final):
        """Counts: acknowledged, lost (not read at its acknowledged
        offset, or for one acknowledged without an offset, not read exactly
        once in its partition), duplicated (a value at two offsets),
        inconsistent (an offset with two values), vanished (read live,
        missing at the end)."""
        offsets_of = {}
        for key, value in final.items():
            offsets_of.setdefault(value, []).append(key)
        # A delivery report may carry no offset (-1, unknown): such a
        # record must be read once, anywhere in its partition.
        blind = {v: at for v, at in self.acked.items() if at[1] < 0}
        lost = [(v, at) for v, at in self.acked.items()
                if (final.get(at) != v if at[1] >= 0 else
                    [p for p, _ in offsets_of.get(v, [])] != [at[0]])]
        duplicated = [v for v, at in offsets_of.items() if len(at) > 1]
        vanished = [k for k, v in self.read.items() if final.get(k) != v]
        return {
            "sent": self.sent,
            "acknowledged": len(self.acked),
            "acknowledged without offset": len(blind),
            "failed": len(self.failed),
            "read live": len(self.read),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "inconsistent": len(self.conflicts),
            "vanished": len(vanished),
            "notes": self.notes,
            "examples": {"lost": [(v, at, offsets_of.get(v)) for v, at in lost[:5]], "duplicated": duplicated[:5],
                         "inconsistent": self.conflicts[:5], "vanished": vanished[:5]},
        }
