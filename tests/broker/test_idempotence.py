"""Idempotent producers with real clients: librdkafka with
`enable.idempotence=true` and kafka-python's default producer (idempotent
since 2.1) write every record exactly once, in order. The duplicate,
gap and stale-epoch cases are checked at the protocol level in
tools/tests/idempotence.rs."""

import socket
import struct
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 60


def create(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result arrives
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(TIMEOUT_S)


def read_all(bootstrap, topic, partitions, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < count and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            got.append((m.partition(), m.offset(), m.value()))
    # Nothing beyond `count` either: one more short poll must be empty.
    assert c.consume(1000, 1.0) == []
    c.close()
    return got


def test_librdkafka_idempotent_producer_writes_each_record_once_in_order(broker):
    topic = f"idem-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 4)
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2})
    n = 20_000
    for i in range(n):
        p.produce(topic, value=str(i).encode(), partition=i % 4)
    assert p.flush(TIMEOUT_S) == 0
    got = read_all(broker.bootstrap, topic, 4, n)
    assert len(got) == n
    for part in range(4):
        mine = [(o, int(v)) for (q, o, v) in got if q == part]
        assert [o for o, _ in mine] == list(range(len(mine))), "contiguous offsets"
        assert [v for _, v in mine] == list(range(part, n, 4)), "every record once, in order"


def test_kafka_python_default_producer_is_idempotent_and_works(broker):
    from kafka import KafkaProducer

    topic = f"idem-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    for i in range(1000):
        p.send(topic, value=str(i).encode(), partition=0)
    p.flush(TIMEOUT_S)
    p.close()
    got = read_all(broker.bootstrap, topic, 1, 1000)
    assert [int(v) for (_, _, v) in got] == list(range(1000))
    assert [o for (_, o, _) in got] == list(range(1000))


def _uvarint(data, pos):
    n = shift = 0
    while True:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, pos


class _Wire:
    """Reads the few fields of Produce requests and responses the proxy
    needs, in versions 3 to 9 (flexible from 9)."""

    def __init__(self, data, pos, flexible):
        self.data, self.pos, self.flexible = data, pos, flexible

    def fixed(self, code):
        (v,) = struct.unpack_from(">" + code, self.data, self.pos)
        self.pos += struct.calcsize(">" + code)
        return v

    def count(self):
        if self.flexible:
            n, self.pos = _uvarint(self.data, self.pos)
            return n - 1
        return self.fixed("i")

    def string(self):
        n = self.count() if self.flexible else self.fixed("h")
        s = None if n < 0 else self.data[self.pos:self.pos + n].decode()
        self.pos += max(n, 0)
        return s

    def blob(self):
        n = self.count() if self.flexible else self.fixed("i")
        b = None if n < 0 else self.data[self.pos:self.pos + n]
        self.pos += max(n, 0)
        return b

    def tags(self):
        if self.flexible:
            n, self.pos = _uvarint(self.data, self.pos)
            for _ in range(n):
                _, self.pos = _uvarint(self.data, self.pos)
                size, self.pos = _uvarint(self.data, self.pos)
                self.pos += size


def parse_produce_request(frame):
    """(version, correlation id, [(topic, partition, producer id, epoch,
    base sequence, records)]) of the first batch for each partition."""
    _, version, correlation_id = struct.unpack_from(">hhi", frame)
    w = _Wire(frame, 8, False)
    w.string()  # client id: never compact
    w.flexible = version >= 9
    w.tags()
    w.string()  # transactional id
    w.fixed("h"), w.fixed("i")  # acks, timeout
    batches = []
    for _ in range(w.count()):
        topic = w.string()
        for _ in range(w.count()):
            partition = w.fixed("i")
            records = w.blob()
            pid, epoch, seq, count = struct.unpack_from(">qhii", records, 43)
            batches.append((topic, partition, pid, epoch, seq, count))
            w.tags()
        w.tags()
    return version, correlation_id, batches


def parse_produce_response(frame, version):
    """{(topic, partition): (error code, base offset)}"""
    w = _Wire(frame, 4, version >= 9)
    w.tags()
    out = {}
    for _ in range(w.count()):
        topic = w.string()
        for _ in range(w.count()):
            partition, error, base_offset = w.fixed("i"), w.fixed("h"), w.fixed("q")
            out[(topic, partition)] = (error, base_offset)
            # The rest of the partition's answer is not needed: one
            # partition per request in these tests.
            break
        break
    return out


class DroppingProxy:
    """A TCP proxy in front of every shard that lets the broker answer each
    `every`th produce request and then closes that connection instead of
    passing the answer on: the broker appended the batch, the client never
    heard, and sends it again.

    It records what proves the broker received those duplicates: the batches
    whose answers it swallowed (`swallowed`) and every answer it passed on
    (`answered`), each as (topic, partition, producer id, epoch, base
    sequence, records) -> (error code, base offset)."""

    def __init__(self, port, shards, target_port, every):
        self.port, self.every = port, every
        self.count = 0
        self.swallowed, self.answered = [], []
        self.lock = threading.Lock()
        self.listeners = []
        for k in range(shards):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port + k))
            s.listen(64)
            self.listeners.append(s)
            threading.Thread(target=self._accept, args=(s, target_port + k), daemon=True).start()

    def _accept(self, listener, target_port):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            # Produce requests in flight on this connection: correlation id
            # -> (version, batches, whether to swallow the answer).
            pending = {}
            threading.Thread(target=self._requests, args=(client, upstream, pending), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, pending), daemon=True).start()

    @staticmethod
    def _read_exactly(sock, n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _read_frame(self, sock):
        size = self._read_exactly(sock, 4)
        frame = size and self._read_exactly(sock, struct.unpack(">i", size)[0])
        return size, frame

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _requests(self, client, upstream, pending):
        try:
            while True:
                size, frame = self._read_frame(client)
                if not frame:
                    break
                swallow = False
                if struct.unpack(">h", frame[:2])[0] == 0:  # Produce
                    version, correlation_id, batches = parse_produce_request(frame)
                    with self.lock:
                        self.count += 1
                        swallow = self.count % self.every == 0
                        pending[correlation_id] = (version, batches, swallow)
                upstream.sendall(size + frame)
                if swallow:
                    # The connection ends once the broker has answered this
                    # request (see _responses); nothing more goes through.
                    return
        except OSError:
            pass
        self._close(client, upstream)

    def _responses(self, upstream, client, pending):
        try:
            while True:
                size, frame = self._read_frame(upstream)
                if not frame:
                    break
                correlation_id = struct.unpack(">i", frame[:4])[0]
                with self.lock:
                    request = pending.pop(correlation_id, None)
                if request is not None:
                    version, batches, swallow = request
                    answers = parse_produce_response(frame, version)
                    outcome = [(b, answers.get(b[:2])) for b in batches]
                    with self.lock:
                        (self.swallowed if swallow else self.answered).extend(outcome)
                    if swallow:
                        break
                client.sendall(size + frame)
        except OSError:
            pass
        self._close(client, upstream)

    def close(self):
        for s in self.listeners:
            s.close()


def run_with_injected_retries(make_broker, idempotent):
    """Produces 3000 records through a proxy that swallows every 15th produce
    request's answer; returns (values read back, the proxy, n)."""
    from conftest import free_port_range

    b = make_broker()
    proxy_port = free_port_range(b.shards)
    # The broker advertises the proxy's ports, so every connection of the
    # clients (after bootstrap) goes through the proxy.
    b.extra_args = ["--advertised-port", str(proxy_port)]
    b.start()
    proxy = DroppingProxy(proxy_port, b.shards, b.port, every=15)
    topic = f"retry-{uuid.uuid4().hex[:8]}"
    try:
        create(b.bootstrap, topic, 1)
        p = Producer({
            "bootstrap.servers": f"127.0.0.1:{proxy_port}",
            "enable.idempotence": idempotent,
            "acks": "all",
            "linger.ms": 1,
            "batch.num.messages": 20,  # ~150 requests: about 10 dropped
            # As idempotence implies; unbounded pipelining would put every
            # request of a connection in flight before the drop.
            "max.in.flight.requests.per.connection": 5,
            "retry.backoff.ms": 10,
            "reconnect.backoff.ms": 10,
            "reconnect.backoff.max.ms": 100,
            "message.send.max.retries": 100,
        })
        errors = []
        n = 3000
        for i in range(n):
            p.produce(topic, value=str(i).encode(), partition=0, on_delivery=lambda e, m: errors.append(e))
            p.poll(0)
        assert p.flush(TIMEOUT_S) == 0
        assert errors == [None] * n, [e for e in errors if e is not None][:3]
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "unused"})
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S)
        c.close()
        values = [int(v) for (_, _, v) in read_all(b.bootstrap, topic, 1, high)]
    finally:
        proxy.close()
    return values, proxy, n


def test_librdkafka_idempotent_producer_under_injected_retries(make_broker):
    values, proxy, n = run_with_injected_retries(make_broker, idempotent=True)
    # Batches the broker appended (it answered them without an error) whose
    # answers the client never got.
    appended = {batch: answer for batch, answer in proxy.swallowed if answer is not None and answer[0] == 0}
    assert appended, f"no swallowed answer reported a stored batch: {proxy.swallowed}"
    assert all(batch[2] >= 0 for batch in appended), "the batches carried a producer id"
    # Each was sent again (the same producer id, epoch and sequence), and the
    # broker answered the duplicate with the offset it had given the first.
    answered = {}
    for batch, answer in proxy.answered:
        answered.setdefault(batch, []).append(answer)
    for batch, first in appended.items():
        assert batch in answered, f"{batch} was never sent again"
        assert answered[batch] == [first], f"{batch}: first answer {first}, answers to the resend {answered[batch]}"
    # And it stored each record once: had it appended a duplicate again, a
    # value would repeat.
    assert values == list(range(n)), "every record once, in order, despite the retries"



def test_describe_producers_through_kafka_python(make_broker):
    """DescribeProducers (KIP-664): the partition's idempotent producer with
    its epoch, last sequence and last batch time, before and after a
    restart (the producers' snapshot keeps the time)."""
    from kafka import KafkaAdminClient
    from kafka.structs import TopicPartition as KTopicPartition

    b = make_broker(shards=1).start()
    topic = f"dp-{uuid.uuid4().hex[:8]}"
    create(b.bootstrap, topic, 1)
    before = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for i in range(30):
        p.produce(topic, f"v{i}".encode(), partition=0)
    assert p.flush(30) == 0
    after = int(time.time() * 1000)

    def describe():
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            states = admin.describe_producers([KTopicPartition(topic, 0)])
        finally:
            admin.close()
        return states[KTopicPartition(topic, 0)].active_producers

    (state,) = describe()
    assert (state.producer_epoch, state.last_sequence) == (0, 29)
    assert before <= state.last_timestamp <= after
    assert (state.coordinator_epoch, state.current_transaction_start_offset) == (-1, -1)
    b.restart()
    assert describe() == [state]
