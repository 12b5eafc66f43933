"""Client quotas: AlterClientQuotas and DescribeClientQuotas on the wire
(Kafka's entities, defaults, filters and refusals; the quotas survive a
restart), and their enforcement through librdkafka: a producer and a
consumer over their byte rates are told `throttle_time_ms` (librdkafka's
throttle callback) while other clients are served, and a consumer under a
quota still reads every record. Timing is never asserted: the tests check
what is reported and what arrives, within bounded waits."""

import socket
import struct

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from conftest import wait_until
from test_fuzz_live import Reader, Writer, recv_frame
from test_sasl import counter

TIMEOUT_S = 60
DESCRIBE, ALTER = 48, 49
INVALID_REQUEST = 42


def call(broker, api, body, version=1):
    """One flexible request on its own connection; the response body."""
    w = Writer(True)
    w.i16(api)
    w.i16(version)
    w.i32(77)
    w.string("quota-test", compact=False)
    w.tags()
    body(w)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S) as s:
        s.sendall(struct.pack(">i", len(w.buf)) + bytes(w.buf))
        frame = recv_frame(s)
    r = Reader(frame, True)
    assert r.fixed("i") == 77
    r.tags()
    return r


def alter(broker, entries, validate_only=False):
    """entries: [([(type, name|None)], [(key, value|None for remove)])];
    answers [(error_code, message)] per entry."""
    def entity(w, part):
        w.string(part[0])
        w.string(part[1])
        w.tags()

    def op(w, item):
        w.string(item[0])
        w.raw(struct.pack(">d", 0.0 if item[1] is None else item[1]))
        w.boolean(item[1] is None)
        w.tags()

    def entry(w, e):
        w.array(e[0], entity)
        w.array(e[1], op)
        w.tags()

    def body(w):
        w.array(entries, entry)
        w.boolean(validate_only)
        w.tags()

    r = call(broker, ALTER, body)
    r.fixed("i")  # throttle
    out = []
    for _ in range(r.count()):
        code, message = r.fixed("h"), r.string()
        for _ in range(r.count()):
            r.string(), r.string()
            r.tags()
        r.tags()
        out.append((code, message))
    return out


def describe(broker, components, strict=False):
    """components: [(type, match_type, name)]; answers (error_code,
    {((type, name), ...): {key: value}})."""
    def component(w, c):
        w.string(c[0])
        w.i8(c[1])
        w.string(c[2])
        w.tags()

    def body(w):
        w.array(components, component)
        w.boolean(strict)
        w.tags()

    r = call(broker, DESCRIBE, body)
    r.fixed("i")
    code, _ = r.fixed("h"), r.string()
    found = {}
    for _ in range(max(r.count(), 0)):
        entity = []
        for _ in range(r.count()):
            entity.append((r.string(), r.string()))
            r.tags()
        values = {}
        for _ in range(r.count()):
            key = r.string()
            values[key] = r.fixed("d")
            r.tags()
        r.tags()
        found[tuple(entity)] = values
    return code, found


EXACT, DEFAULT, ANY = 0, 1, 2


def test_quotas_are_set_listed_by_filter_removed_and_survive_a_restart(broker):
    alice = [("user", "alice")]
    alice_app = [("user", "alice"), ("client-id", "app")]
    default_client = [("client-id", None)]
    assert alter(broker, [
        (alice, [("producer_byte_rate", 1048576.0), ("consumer_byte_rate", 2097152.0)]),
        (alice_app, [("request_percentage", 50.0)]),
        (default_client, [("consumer_byte_rate", 4096.0)]),
    ]) == [(0, None)] * 3
    everything = {
        (("user", "alice"),): {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0},
        (("user", "alice"), ("client-id", "app")): {"request_percentage": 50.0},
        (("client-id", None),): {"consumer_byte_rate": 4096.0},
    }
    assert describe(broker, []) == (0, everything)
    code, found = describe(broker, [("user", EXACT, "alice")])
    assert code == 0 and set(found) == {(("user", "alice"),), (("user", "alice"), ("client-id", "app"))}
    assert set(describe(broker, [("user", EXACT, "alice")], strict=True)[1]) == {(("user", "alice"),)}
    assert set(describe(broker, [("client-id", DEFAULT, None)])[1]) == {(("client-id", None),)}
    assert set(describe(broker, [("client-id", ANY, None)])[1]) == \
        {(("user", "alice"), ("client-id", "app")), (("client-id", None),)}
    assert describe(broker, [("user", EXACT, "bob")]) == (0, {})
    # Removing the last key of an entity removes the entity.
    assert alter(broker, [(alice_app, [("request_percentage", None)])]) == [(0, None)]
    del everything[(("user", "alice"), ("client-id", "app"))]
    broker.restart()
    assert describe(broker, []) == (0, everything)


def test_bad_quota_changes_are_refused_each_on_its_own(broker):
    results = alter(broker, [
        ([("user", "ok")], [("producer_byte_rate", 1000.0)]),
        ([("ip", "10.0.0.1")], [("connection_creation_rate", 10.0)]),
        ([("user", "a"), ("user", "b")], [("producer_byte_rate", 1000.0)]),
        ([("user", "a")], [("producer_byte_rate", 1000.5)]),
        ([("user", "a")], [("consumer_byte_rate", -1.0)]),
        ([("user", "a")], [("unknown_rate", 1.0)]),
        ([("user", "a")], [("producer_byte_rate", 1.0), ("producer_byte_rate", 2.0)]),
        ([], [("producer_byte_rate", 1.0)]),
    ])
    assert results[0] == (0, None)
    assert [code for code, _ in results[1:]] == [INVALID_REQUEST] * 7, results
    assert all(message for _, message in results[1:])
    assert alter(broker, [([("user", "dry")], [("producer_byte_rate", 5.0)])], validate_only=True) == [(0, None)]
    assert describe(broker, []) == (0, {(("user", "ok"),): {"producer_byte_rate": 1000.0}})
    # Filters that cannot match anything sensible are refused whole.
    assert describe(broker, [("ip", ANY, None)])[0] == INVALID_REQUEST
    assert describe(broker, [("user", EXACT, None)])[0] == INVALID_REQUEST
    assert describe(broker, [("user", ANY, None), ("user", ANY, None)])[0] == INVALID_REQUEST


def throttled(events):
    return any(e.throttle_time > 0 for e in events)


def test_a_producer_over_its_byte_rate_is_throttled_while_others_are_served(broker):
    # 10 KB/s for client id "slow": its first 300 KB request is far past
    # the ten seconds of quota the first window allows.
    assert alter(broker, [([("client-id", "slow")], [("producer_byte_rate", 10000.0)])]) == [(0, None)]
    slow_events, fast_events, delivered = [], [], []
    slow = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "slow", "linger.ms": 50,
                     "throttle_cb": slow_events.append})
    for _ in range(300):
        slow.produce("quota-p", b"x" * 1000)
    wait_until(lambda: slow.poll(0.1) >= 0 and throttled(slow_events), TIMEOUT_S,
               "librdkafka to report the throttle")
    fast = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "fast", "linger.ms": 5,
                     "throttle_cb": fast_events.append})
    for i in range(300):
        fast.produce("quota-p", b"y" * 1000, on_delivery=lambda e, m: delivered.append(e))
    assert fast.flush(TIMEOUT_S) == 0
    assert delivered == [None] * 300 and not throttled(fast_events)
    assert counter(broker, "corelog_throttled_requests_total") >= 1
    slow.purge()


def test_a_consumer_over_its_byte_rate_is_throttled_and_still_reads_everything(broker):
    values = [bytes([i]) * 10_000 for i in range(90)]
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for v in values:
        # One batch each: fetches are cut at batch boundaries.
        p.produce("quota-c", v, partition=0)
        assert p.flush(TIMEOUT_S) == 0
    # 40 KB/s: one fetch may take 400 KB (ten windows); the next 400 KB
    # take the rate past the quota (throttle time reported with them), and
    # the last 100 KB wait until the rate is back under it.
    assert alter(broker, [([("client-id", "reader")], [("consumer_byte_rate", 40000.0)])]) == [(0, None)]
    events, got = [], []
    c = Consumer({"bootstrap.servers": broker.bootstrap, "client.id": "reader", "group.id": "quota-c",
                  "throttle_cb": events.append, "fetch.max.bytes": 10_000_000,
                  "max.partition.fetch.bytes": 10_000_000})
    c.assign([TopicPartition("quota-c", 0, OFFSET_BEGINNING)])
    wait_until(lambda: got.extend(m.value() for m in c.consume(100, 0.2) if not m.error()) or len(got) >= 90,
               TIMEOUT_S, "every record under the quota")
    c.close()
    assert got == values
    assert throttled(events)


def test_a_request_percentage_quota_mutes_a_busy_client(broker):
    # A thousandth of a percent of the shard's core: 100 µs of handling
    # in ten seconds. The client keeps sending until it is past it.
    assert alter(broker, [([("client-id", "busy")], [("request_percentage", 0.001)])]) == [(0, None)]
    before = counter(broker, "corelog_throttled_requests_total")
    p = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "busy", "linger.ms": 0})

    def busier():
        p.produce("quota-r", b"z")
        p.poll(0.05)
        return counter(broker, "corelog_throttled_requests_total") > before

    wait_until(busier, TIMEOUT_S, "the busy client throttled")
    p.purge()
    other = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "other"})
    other.produce("quota-r", b"w")
    assert other.flush(TIMEOUT_S) == 0
