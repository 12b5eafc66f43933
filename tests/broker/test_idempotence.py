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


class DroppingProxy:
    """A TCP proxy in front of every shard that forwards each `every`th
    produce request to the broker and then closes that connection before
    the response can reach the client: the broker appended the batch, the
    client never heard, and sends it again."""

    def __init__(self, port, shards, target_port, every):
        self.port, self.every = port, every
        self.count = self.dropped = 0
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
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _read_exactly(sock, n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _requests(self, client, upstream):
        try:
            while True:
                size = self._read_exactly(client, 4)
                frame = size and self._read_exactly(client, struct.unpack(">i", size)[0])
                if not frame:
                    break
                upstream.sendall(size + frame)
                if struct.unpack(">h", frame[:2])[0] == 0:  # Produce
                    with self.lock:
                        self.count += 1
                        drop = self.count % self.every == 0
                        self.dropped += drop
                    if drop:
                        break
        except OSError:
            pass
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    @staticmethod
    def _responses(upstream, client):
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass

    def close(self):
        for s in self.listeners:
            s.close()


def run_with_injected_retries(make_broker, idempotent):
    """Produces 3000 records through a proxy that drops every 15th produce
    request's response; returns (values read back, drops injected, n)."""
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
    return values, proxy.dropped, n


def test_librdkafka_idempotent_producer_under_injected_retries(make_broker):
    values, dropped, n = run_with_injected_retries(make_broker, idempotent=True)
    assert dropped > 0, "the proxy dropped some responses"
    # Had the broker appended a resent batch again, a value would repeat.
    assert values == list(range(n)), "every record once, in order, despite the retries"

