"""A live-broker fuzzer: valid requests of every API the broker advertises,
hand-encoded for every served version, then mutated with a seeded
random.Random (bit flips, truncation, junk, array counts and string lengths
set to extremes, bad varints, bogus tagged fields, and for Produce record
batches whose CRC-32C is valid but whose fields are absurd) and sent to
both shards of a running broker.

What must hold: the broker process stays alive, every shard keeps answering
ApiVersions and Metadata, the records acknowledged before the fuzzing are
read back intact afterwards, and the broker still stops cleanly and starts
again over whatever the fuzzing got stored. A bad request may close its
connection or be answered with an error; nothing else. The request that
took a shard down is reported with its bytes (hex) and the broker's panic.

CORELOG_FUZZ_SEED picks the sequence (printed in every failure message),
CORELOG_FUZZ_REQUESTS how many mutated requests are sent (default 4,000:
about 20 s of sending on two cores with a debug build; the clean stop
afterwards may wait up to 30 s for long-poll fetches the fuzzing left)."""

import gzip
import os
import random
import re
import socket
import struct
import subprocess
import time
import zlib

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SEED = int(os.environ.get("CORELOG_FUZZ_SEED", "20251203"))
REQUESTS = int(os.environ.get("CORELOG_FUZZ_REQUESTS", "4000"))
# A full health check of every shard after this many requests.
CHECK_EVERY = 250
# How long one fuzzed request may go unanswered before its connection is
# dropped (requests that wait on purpose, like a JoinGroup or a Fetch with a
# fuzzed max_wait, end here; the next request takes a new connection).
REPLY_TIMEOUT_S = 0.5
# How long a shard may take to answer a health probe before it is taken for
# hung.
HEALTH_TIMEOUT_S = 10
TIMEOUT_S = 30
CLIENT_ID = b"fuzz"

I8 = (-(1 << 7), (1 << 7) - 1)
I16 = (-(1 << 15), (1 << 15) - 1)
I32 = (-(1 << 31), (1 << 31) - 1)
I64 = (-(1 << 63), (1 << 63) - 1)

# ---------------------------------------------------------------------------
# Wire encoding


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), as record batches carry it."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def uvarint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n):
    return ((n << 1) ^ (n >> 63)) & ((1 << 64) - 1)


def varint(n):
    return uvarint(zigzag(n))


def overlong_uvarint(n, width=10):
    """n in exactly `width` bytes (valid up to 10 bytes, padded with
    continuation bits: decoders must accept or refuse it, not crash)."""
    out = bytearray()
    for _ in range(width - 1):
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n & 0x7F)
    return bytes(out)


class Writer:
    """Encodes a request and remembers where each integer field is, so that
    mutations can aim at array counts, string lengths and tagged fields."""

    def __init__(self, flexible):
        self.buf = bytearray()
        self.flexible = flexible
        # (offset, size, kind, role): kind is a struct code or "uv" for an
        # unsigned varint; role is "count", "length", "tags" or "value".
        self.fields = []

    def _fixed(self, code, v, role):
        self.fields.append((len(self.buf), struct.calcsize(">" + code), code, role))
        self.buf += struct.pack(">" + code, v)

    def i8(self, v, role="value"):
        self._fixed("b", v, role)

    def i16(self, v, role="value"):
        self._fixed("h", v, role)

    def i32(self, v, role="value"):
        self._fixed("i", v, role)

    def i64(self, v, role="value"):
        self._fixed("q", v, role)

    def boolean(self, v):
        self._fixed("b", 1 if v else 0, "value")

    def uv(self, v, role):
        enc = uvarint(v)
        self.fields.append((len(self.buf), len(enc), "uv", role))
        self.buf += enc

    def raw(self, b):
        self.buf += b

    def uuid(self, b):
        assert len(b) == 16
        self.buf += b

    def string(self, s, compact=None):
        """A nullable string: int16 length, or a compact uvarint length + 1."""
        compact = self.flexible if compact is None else compact
        b = None if s is None else (s.encode() if isinstance(s, str) else s)
        if compact:
            self.uv(0 if b is None else len(b) + 1, "length")
        else:
            self.i16(-1 if b is None else len(b), "length")
        self.buf += b or b""

    def bytes_(self, b):
        if self.flexible:
            self.uv(0 if b is None else len(b) + 1, "length")
        else:
            self.i32(-1 if b is None else len(b), "length")
        self.buf += b or b""

    def array(self, items, encode):
        if self.flexible:
            self.uv(0 if items is None else len(items) + 1, "count")
        else:
            self.i32(-1 if items is None else len(items), "count")
        for item in items or []:
            encode(self, item)

    def tags(self):
        if self.flexible:
            self.uv(0, "tags")


class Request:
    """One encoded request: the frame payload (header and body, without the
    size prefix) and the positions of its integer fields."""

    def __init__(self, api, version, payload, fields, desc):
        self.api, self.version = api, version
        self.payload = bytes(payload)
        self.fields = fields
        self.desc = desc

    def frame(self):
        return struct.pack(">i", len(self.payload)) + self.payload


# ---------------------------------------------------------------------------
# Record batches (magic 2)


def record_parts(offset_delta, key, value, headers=(), ts_delta=0):
    """A record's fields after its length, as (kind, value) parts that a
    mutation may change one by one: "varint" (zigzag), "i8", "raw"."""
    parts = [("i8", 0), ("varint", ts_delta), ("varint", offset_delta)]
    parts += [("varint", -1 if key is None else len(key)), ("raw", key or b"")]
    parts += [("varint", -1 if value is None else len(value)), ("raw", value or b"")]
    parts.append(("varint", len(headers)))
    for hk, hv in headers:
        parts += [("varint", len(hk)), ("raw", hk), ("varint", -1 if hv is None else len(hv)), ("raw", hv or b"")]
    return parts


def encode_parts(parts):
    out = bytearray()
    for kind, v in parts:
        if kind == "varint":
            out += varint(v)
        elif kind == "i8":
            out += struct.pack(">b", v)
        else:  # "raw": already encoded bytes
            out += v
    return bytes(out)


def encode_record(rec):
    """rec: {"parts": [...], "length": None or an override (int, or raw bytes)}"""
    body = encode_parts(rec["parts"])
    length = rec.get("length")
    if length is None:
        return varint(len(body)) + body
    if isinstance(length, bytes):
        return length + body
    return varint(length) + body


class Batch:
    """A v2 record batch whose every header field can be set; the CRC is
    computed over what is encoded unless `crc` is set."""

    def __init__(self, records, pid=-1, epoch=-1, seq=-1, base_ts=1_700_000_000_000):
        self.base_offset = 0
        self.leader_epoch = -1
        self.magic = 2
        self.attributes = 0
        self.last_offset_delta = len(records) - 1
        self.base_ts = base_ts
        self.max_ts = base_ts
        self.pid, self.epoch, self.seq = pid, epoch, seq
        self.count = len(records)
        self.records = records  # list of record dicts, or bytes (already encoded)
        self.batch_length = None
        self.crc = None
        self.trailer = b""

    def records_bytes(self):
        if isinstance(self.records, bytes):
            return self.records
        return b"".join(encode_record(r) for r in self.records)

    def encode(self):
        after_crc = struct.pack(">hiqqqhii", self.attributes, self.last_offset_delta, self.base_ts,
                                self.max_ts, self.pid, self.epoch, self.seq, self.count)
        after_crc += self.records_bytes()
        crc = crc32c(after_crc) if self.crc is None else self.crc
        # batchLength counts from the partition leader epoch on.
        length = 4 + 1 + 4 + len(after_crc) if self.batch_length is None else self.batch_length
        head = struct.pack(">qiibI", self.base_offset, length, self.leader_epoch, self.magic, crc & 0xFFFFFFFF)
        return head + after_crc + self.trailer


def simple_batch(values, keys=None, pid=-1, epoch=-1, seq=-1, headers=()):
    keys = keys or [None] * len(values)
    recs = [{"parts": record_parts(i, k, v, headers)} for i, (k, v) in enumerate(zip(keys, values))]
    return Batch(recs, pid=pid, epoch=epoch, seq=seq)


# ---------------------------------------------------------------------------
# Request bodies, every served version (net/src/versions.rs)

# The first flexible version of each API (KIP-482).
FLEXIBLE_FROM = {0: 9, 1: 12, 2: 6, 3: 9, 8: 8, 9: 6, 10: 3, 11: 6, 12: 4, 13: 4, 14: 4, 15: 5, 16: 3, 18: 3,
                 19: 5, 20: 4, 21: 2, 22: 2, 23: 4, 24: 3, 25: 3, 26: 3, 27: 1, 28: 3, 32: 4, 33: 2, 35: 2, 37: 2, 42: 2, 43: 2, 44: 1, 47: 99, 17: 99, 36: 2, 29: 2, 30: 2, 31: 2, 48: 1, 49: 1, 50: 0, 51: 0, 55: 0, 60: 0, 61: 0, 65: 0, 66: 0}


class Ctx:
    """Names and ids the request bodies use: the fuzz topic (never the
    topic whose records are checked at the end), a group, a producer id."""

    def __init__(self, seed):
        self.topic = f"fz-{seed}"
        self.topic_id = bytes(16)
        self.group = f"fz-group-{seed}"
        self.pid, self.epoch = -1, -1
        self.batch = simple_batch([b"v0", b"v1"], [b"k0", None], headers=[(b"h", b"x")])


def message_set(values, magic=1):
    """Messages of format v0 or v1 (Kafka before 0.11), keyless, at
    offsets 0, 1, ...: what Produce v0-v2 carried."""
    out = b""
    for i, v in enumerate(values):
        body = struct.pack(">bb", magic, 0)
        if magic == 1:
            body += struct.pack(">q", 1_700_000_000_000)
        body += struct.pack(">ii", -1, len(v)) + v
        message = struct.pack(">I", zlib.crc32(body)) + body
        out += struct.pack(">qi", i, len(message)) + message
    return out


def body_produce(w, v, c, batch=None):
    # v1 carries an old client's message set (converted to a batch by
    # the broker); v0 and v2 a record batch v2, as Kafka 3.9 took too.
    data = message_set([b"m0", b"m1"]) if v == 1 else (batch or c.batch).encode()
    if v >= 3:
        w.string(None)  # transactional id
    w.i16(-1)  # acks=all
    w.i32(5000)

    def part(w, _):
        w.i32(0)
        w.bytes_(data)
        w.tags()

    def topic(w, name):
        w.string(name)
        w.array([0], part)
        w.tags()

    w.array([c.topic], topic)
    w.tags()


def body_fetch(w, v, c):
    if v <= 14:
        w.i32(-1)  # replica id
    w.i32(0)  # max wait
    w.i32(1)  # min bytes
    if v >= 3:
        w.i32(1 << 20)  # max bytes
    if v >= 4:
        w.i8(0)  # isolation level
    if v >= 7:
        w.i32(0)  # session id
        w.i32(-1)  # session epoch: a full request without a session

    def part(w, p):
        w.i32(p)
        if v >= 9:
            w.i32(-1)  # current leader epoch
        w.i64(0)  # fetch offset
        if v >= 12:
            w.i32(-1)  # last fetched epoch
        if v >= 5:
            w.i64(-1)  # log start offset
        w.i32(1 << 20)
        w.tags()

    def topic(w, _):
        if v <= 12:
            w.string(c.topic)
        else:
            w.uuid(c.topic_id)
        w.array([0, 1], part)
        w.tags()

    w.array([c.topic], topic)
    if v >= 7:
        w.array([], lambda w, _: None)  # forgotten topics
    if v >= 11:
        w.string("")  # rack id
    w.tags()


def body_list_offsets(w, v, c):
    w.i32(-1)
    if v >= 2:
        w.i8(0)

    def part(w, ts):
        w.i32(0)
        if v >= 4:
            w.i32(-1)
        w.i64(ts)
        if v == 0:
            w.i32(1)  # max number of offsets
        w.tags()

    def topic(w, _):
        w.string(c.topic)
        w.array([-2, -1], part)
        w.tags()

    w.array([c.topic], topic)
    w.tags()


def body_metadata(w, v, c):
    def topic(w, name):
        if v >= 10:
            w.uuid(bytes(16))
        w.string(name)
        w.tags()

    w.array([c.topic], topic)
    if v >= 4:
        w.boolean(True)  # allow auto topic creation
    if 8 <= v <= 10:
        w.boolean(False)
    if v >= 8:
        w.boolean(False)
    w.tags()


def body_offset_commit(w, v, c):
    w.string(c.group)
    if v >= 1:
        w.i32(-1)  # generation: a commit outside any generation
        w.string("")  # member id
    if v >= 7:
        w.string(None)  # group instance id
    if 2 <= v <= 4:
        w.i64(-1)  # retention

    def part(w, p):
        w.i32(p)
        w.i64(1)
        if v == 1:
            w.i64(-1)  # commit timestamp
        if v >= 6:
            w.i32(-1)
        w.string("meta")
        w.tags()

    def topic(w, _):
        w.string(c.topic)
        w.array([0, 1], part)
        w.tags()

    w.array([c.topic], topic)
    w.tags()


def body_offset_fetch(w, v, c):
    def topic(w, _):
        w.string(c.topic)
        w.array([0, 1], lambda w, p: w.i32(p))
        w.tags()

    if v <= 7:
        w.string(c.group)
        w.array([c.topic], topic)
    else:
        def group(w, _):
            w.string(c.group)
            w.array([c.topic], topic)
            w.tags()

        w.array([c.group], group)
    if v >= 7:
        w.boolean(False)
    w.tags()


def body_find_coordinator(w, v, c):
    if v <= 3:
        w.string(c.group)
    if v >= 1:
        w.i8(0)  # key type: group
    if v >= 4:
        w.array([c.group], lambda w, g: w.string(g))
    w.tags()


def body_join_group(w, v, c):
    w.string(c.group)
    w.i32(10_000)  # session timeout
    if v >= 1:
        w.i32(10_000)  # rebalance timeout
    # A member id the group does not know: answered at once (an empty one
    # would wait for the rebalance before v4).
    w.string("" if v >= 4 else "fuzz-member")
    if v >= 5:
        w.string(None)
    w.string("consumer")

    def proto(w, name):
        w.string(name)
        w.bytes_(b"\x00\x00\x00\x00\x00\x01" + struct.pack(">h", len(c.topic)) + c.topic.encode()
                 + b"\xff\xff\xff\xff")
        w.tags()

    w.array(["range"], proto)
    if v >= 8:
        w.string(None)  # reason
    w.tags()


def body_heartbeat(w, v, c):
    w.string(c.group)
    w.i32(1)
    w.string("fuzz-member")
    if v >= 3:
        w.string(None)
    w.tags()


def body_leave_group(w, v, c):
    w.string(c.group)
    if v <= 2:
        w.string("fuzz-member")
    else:
        def member(w, m):
            w.string(m)
            w.string(None)
            if v >= 5:
                w.string("fuzzing")
            w.tags()

        w.array(["fuzz-member"], member)
    w.tags()


def body_sync_group(w, v, c):
    w.string(c.group)
    w.i32(1)
    w.string("fuzz-member")
    if v >= 3:
        w.string(None)
    if v >= 5:
        w.string("consumer")
        w.string("range")

    def assignment(w, m):
        w.string(m)
        w.bytes_(b"\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff")
        w.tags()

    w.array(["fuzz-member"], assignment)
    w.tags()


def body_describe_groups(w, v, c):
    w.array([c.group], lambda w, g: w.string(g))
    if v >= 3:
        w.boolean(False)
    w.tags()


def body_list_groups(w, v, c):
    if v >= 4:
        w.array(["Stable", "Empty"], lambda w, s: w.string(s))
    w.tags()


def body_api_versions(w, v, c):
    if v >= 3:
        w.string("corelog-fuzz")
        w.string("1.0")
    w.tags()


def body_create_topics(w, v, c):
    def config(w, kv):
        w.string(kv[0])
        w.string(kv[1])
        w.tags()

    def topic(w, name):
        w.string(name)
        w.i32(2)  # partitions
        w.i16(1)  # replication factor
        w.array([], lambda w, _: None)  # assignments
        w.array([("retention.ms", "3600000")], config)
        w.tags()

    w.array([c.topic + "-new"], topic)
    w.i32(5000)
    if v >= 1:
        w.boolean(True)  # validate only
    w.tags()


def body_delete_topics(w, v, c):
    name = c.topic + "-gone"  # never exists: the fuzz topic stays
    if v >= 6:
        def topic(w, n):
            w.string(n)
            w.uuid(bytes(16))
            w.tags()

        w.array([name], topic)
    else:
        w.array([name], lambda w, n: w.string(n))
    w.i32(5000)
    w.tags()


def body_init_producer_id(w, v, c):
    w.string(None)
    w.i32(60_000)
    if v >= 3:
        w.i64(-1)
        w.i16(-1)
    w.tags()


def _txn_topics(w, c):
    def topic(w, name):
        w.string(name)
        w.array([0, 1], lambda w, p: w.i32(p))
        w.tags()

    w.array([c.topic], topic)


def body_add_partitions_to_txn(w, v, c):
    if v <= 3:
        w.string(f"fz-tid-{c.group}")
        w.i64(c.pid)
        w.i16(c.epoch)
        _txn_topics(w, c)
    else:
        def txn(w, verify_only):
            w.string(f"fz-tid-{c.group}")
            w.i64(c.pid)
            w.i16(c.epoch)
            w.boolean(verify_only)
            _txn_topics(w, c)
            w.tags()

        w.array([False, True], txn)
    w.tags()


def body_end_txn(w, v, c):
    w.string(f"fz-tid-{c.group}")
    w.i64(c.pid)
    w.i16(c.epoch)
    w.boolean(True)
    w.tags()


def body_write_txn_markers(w, v, c):
    def marker(w, _):
        w.i64(c.pid)
        w.i16(c.epoch)
        w.boolean(False)
        _txn_topics(w, c)
        w.i32(0)  # coordinator epoch
        w.tags()

    w.array([0], marker)
    w.tags()


def body_add_offsets_to_txn(w, v, c):
    w.string(f"fz-tid-{c.group}")
    w.i64(c.pid)
    w.i16(c.epoch)
    w.string(c.group)
    w.tags()


def body_txn_offset_commit(w, v, c):
    w.string(f"fz-tid-{c.group}")
    w.string(c.group)
    w.i64(c.pid)
    w.i16(c.epoch)
    if v >= 3:
        w.i32(-1)  # generation
        w.string("")  # member id
        w.string(None)  # group instance id

    def partition(w, p):
        w.i32(p)
        w.i64(1)
        if v >= 2:
            w.i32(-1)
        w.string("")
        w.tags()

    def topic(w, name):
        w.string(name)
        w.array([0, 1], partition)
        w.tags()

    w.array([c.topic], topic)
    w.tags()


def body_describe_configs(w, v, c):
    def resource(w, _):
        w.i8(2)  # topic
        w.string(c.topic)
        w.array(["retention.ms", "cleanup.policy"], lambda w, k: w.string(k))
        w.tags()

    w.array([c.topic], resource)
    if v >= 1:
        w.boolean(True)  # include synonyms
    if v >= 3:
        w.boolean(False)
    w.tags()


def body_create_partitions(w, v, c):
    def topic(w, name):
        w.string(name)
        w.i32(4)
        w.array(None, lambda w, _: None)  # assignments: none given
        w.tags()

    w.array([c.topic], topic)
    w.i32(5000)
    w.boolean(True)  # validate only
    w.tags()


def body_delete_groups(w, v, c):
    w.array([c.group + "-gone"], lambda w, g: w.string(g))
    w.tags()


def body_incremental_alter_configs(w, v, c):
    def config(w, kv):
        w.string(kv[0])
        w.i8(kv[1])  # 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT
        w.string(kv[2])
        w.tags()

    def resource(w, _):
        w.i8(2)
        w.string(c.topic)
        w.array([("retention.ms", 0, "3600000"), ("cleanup.policy", 2, "compact")], config)
        w.tags()

    w.array([c.topic], resource)
    w.boolean(True)  # validate only
    w.tags()


def body_alter_configs(w, v, c):
    def config(w, kv):
        w.string(kv[0])
        w.string(kv[1])
        w.tags()

    def resource(w, _):
        w.i8(2)
        w.string(c.topic)
        w.array([("retention.ms", "3600000")], config)
        w.tags()

    w.array([c.topic], resource)
    w.boolean(True)  # validate only
    w.tags()


def body_offset_delete(w, v, c):
    w.string(c.group)

    def topic(w, _):
        w.string(c.topic)
        w.array([0], lambda w, p: w.i32(p))

    w.array([c.topic], topic)


def body_describe_cluster(w, v, c):
    w.boolean(False)
    if v >= 1:
        w.i8(1)  # endpoint type: brokers
    w.tags()


def body_describe_quorum(w, v, c):
    def part(w, p):
        w.i32(p)
        w.tags()

    def topic(w, name):
        w.string(name)
        w.array([0], part)
        w.tags()

    w.array(["__cluster_metadata"], topic)
    w.tags()


def body_offset_for_leader_epoch(w, v, c):
    if v >= 3:
        w.i32(-1)  # replica id: a consumer

    def part(w, p):
        w.i32(p)
        if v >= 2:
            w.i32(-1)  # current leader epoch: not checked
        w.i32(0)
        w.tags()

    def topic(w, name):
        w.string(name)
        w.array([0, 1], part)
        w.tags()

    w.array([c.topic], topic)
    w.tags()


def body_elect_leaders(w, v, c):
    if v >= 1:
        w.i8(0)  # preferred

    def topic(w, name):
        w.string(name)
        w.array([0, 7], lambda w, p: w.i32(p))
        w.tags()

    w.array([c.topic], topic)
    w.i32(5000)
    w.tags()


def body_delete_records(w, v, c):
    def part(w, p):
        w.i32(p)
        w.i64(-1)  # up to the high watermark
        w.tags()

    def topic(w, name):
        w.string(name)
        w.array([0, 1], part)
        w.tags()

    w.array([c.topic], topic)
    w.i32(5000)
    w.tags()


def body_describe_log_dirs(w, v, c):
    def topic(w, name):
        w.string(name)
        w.array([0, 1], lambda w, p: w.i32(p))
        w.tags()

    w.array([c.topic], topic)
    w.tags()


def body_describe_producers(w, v, c):
    def topic(w, name):
        w.string(name)
        w.array([0, 1], lambda w, p: w.i32(p))
        w.tags()

    w.array([c.topic], topic)
    w.tags()


def body_describe_transactions(w, v, c):
    w.array([f"fz-tid-{c.group}", "fz-unknown-tid"], lambda w, t: w.string(t))
    w.tags()


def body_list_transactions(w, v, c):
    w.array(["Ongoing", "NoSuchState"], lambda w, t: w.string(t))
    w.array([c.pid], lambda w, p: w.i64(p))
    if v >= 1:
        w.i64(1000)
    w.tags()


def _acl_filter(w, c):
    w.i8(2)  # TOPIC
    w.string(f"fz-{c.group}")
    w.i8(3)  # LITERAL
    w.string("User:fz")
    w.string("*")
    w.i8(3)  # READ
    w.i8(3)  # ALLOW


def body_describe_acls(w, v, c):
    _acl_filter(w, c)
    w.tags()


def body_create_acls(w, v, c):
    def creation(w, _):
        _acl_filter(w, c)
        w.tags()

    w.array([0], creation)
    w.tags()


def body_delete_acls(w, v, c):
    def one(w, _):
        _acl_filter(w, c)
        w.tags()

    w.array([0], one)
    w.tags()


def body_sasl_handshake(w, v, c):
    w.string("SCRAM-SHA-256")


def body_sasl_authenticate(w, v, c):
    w.bytes_(b"n,,n=fz-user,r=fuzz-nonce")
    w.tags()


def body_describe_user_scram_credentials(w, v, c):
    def user(w, name):
        w.string(name)
        w.tags()

    w.array([f"fz-user-{c.group}", "nobody"], user)
    w.tags()


def body_alter_user_scram_credentials(w, v, c):
    def deletion(w, name):
        w.string(name)
        w.i8(1)  # SCRAM-SHA-256
        w.tags()

    def upsertion(w, name):
        w.string(name)
        w.i8(2)  # SCRAM-SHA-512
        w.i32(4096)
        w.bytes_(b"salt-of-the-fuzzer")
        w.bytes_(bytes(64))
        w.tags()

    w.array(["nobody"], deletion)
    w.array([f"fz-user-{c.group}"], upsertion)
    w.tags()


def body_describe_client_quotas(w, v, c):
    def component(w, item):
        kind, match_type, name = item
        w.string(kind)
        w.i8(match_type)
        w.string(name)
        w.tags()

    w.array([("user", 0, f"fz-user-{c.group}"), ("client-id", 2, None)], component)
    w.boolean(False)
    w.tags()


def body_alter_client_quotas(w, v, c):
    def entity(w, item):
        w.string(item[0])
        w.string(item[1])
        w.tags()

    def op(w, key):
        w.string(key)
        w.raw(struct.pack(">d", 0.0))
        w.boolean(True)  # remove
        w.tags()

    # Removals only, validated only: whatever the mutations make of it, the
    # fuzzer sets no quota that would throttle its own health checks.
    def entry(w, _):
        w.array([("user", f"fz-user-{c.group}"), ("client-id", None)], entity)
        w.array(["producer_byte_rate", "request_percentage"], op)
        w.tags()

    w.array([0], entry)
    w.boolean(True)
    w.tags()


# API key: (name, body encoder, lowest version encoded).
ENCODERS = {
    0: ("Produce", body_produce, 0),
    1: ("Fetch", body_fetch, 0),
    2: ("ListOffsets", body_list_offsets, 0),
    3: ("Metadata", body_metadata, 0),
    8: ("OffsetCommit", body_offset_commit, 0),
    9: ("OffsetFetch", body_offset_fetch, 0),
    10: ("FindCoordinator", body_find_coordinator, 0),
    11: ("JoinGroup", body_join_group, 0),
    12: ("Heartbeat", body_heartbeat, 0),
    13: ("LeaveGroup", body_leave_group, 0),
    14: ("SyncGroup", body_sync_group, 0),
    15: ("DescribeGroups", body_describe_groups, 0),
    16: ("ListGroups", body_list_groups, 0),
    17: ("SaslHandshake", body_sasl_handshake, 0),
    18: ("ApiVersions", body_api_versions, 0),
    19: ("CreateTopics", body_create_topics, 0),
    20: ("DeleteTopics", body_delete_topics, 0),
    21: ("DeleteRecords", body_delete_records, 0),
    22: ("InitProducerId", body_init_producer_id, 0),
    23: ("OffsetForLeaderEpoch", body_offset_for_leader_epoch, 0),
    24: ("AddPartitionsToTxn", body_add_partitions_to_txn, 0),
    25: ("AddOffsetsToTxn", body_add_offsets_to_txn, 0),
    26: ("EndTxn", body_end_txn, 0),
    27: ("WriteTxnMarkers", body_write_txn_markers, 0),
    28: ("TxnOffsetCommit", body_txn_offset_commit, 0),
    29: ("DescribeAcls", body_describe_acls, 1),
    30: ("CreateAcls", body_create_acls, 1),
    31: ("DeleteAcls", body_delete_acls, 1),
    32: ("DescribeConfigs", body_describe_configs, 0),
    33: ("AlterConfigs", body_alter_configs, 0),
    35: ("DescribeLogDirs", body_describe_log_dirs, 0),
    36: ("SaslAuthenticate", body_sasl_authenticate, 0),
    37: ("CreatePartitions", body_create_partitions, 0),
    42: ("DeleteGroups", body_delete_groups, 0),
    43: ("ElectLeaders", body_elect_leaders, 0),
    44: ("IncrementalAlterConfigs", body_incremental_alter_configs, 0),
    47: ("OffsetDelete", body_offset_delete, 0),
    50: ("DescribeUserScramCredentials", body_describe_user_scram_credentials, 0),
    48: ("DescribeClientQuotas", body_describe_client_quotas, 0),
    49: ("AlterClientQuotas", body_alter_client_quotas, 0),
    51: ("AlterUserScramCredentials", body_alter_user_scram_credentials, 0),
    55: ("DescribeQuorum", body_describe_quorum, 0),
    60: ("DescribeCluster", body_describe_cluster, 0),
    61: ("DescribeProducers", body_describe_producers, 0),
    65: ("DescribeTransactions", body_describe_transactions, 0),
    66: ("ListTransactions", body_list_transactions, 0),
}


def encode_request(api, version, ctx, correlation_id=1, batch=None):
    flexible = version >= FLEXIBLE_FROM[api]
    w = Writer(flexible)
    w.i16(api, "api")
    w.i16(version, "version")
    w.i32(correlation_id, "corr")
    w.string(CLIENT_ID, compact=False)  # the header's client id is never compact
    w.tags()
    name, body, _ = ENCODERS[api]
    if api == 0:
        body(w, version, ctx, batch)
    else:
        body(w, version, ctx)
    return Request(api, version, w.buf, w.fields, f"{name} v{version}")


# ---------------------------------------------------------------------------
# Raw requests and replies


class Reader:
    def __init__(self, data, flexible=False):
        self.data, self.pos, self.flexible = data, 0, flexible

    def take(self, n):
        b = self.data[self.pos:self.pos + n]
        assert len(b) == n, "short response"
        self.pos += n
        return b

    def fixed(self, code):
        return struct.unpack(">" + code, self.take(struct.calcsize(">" + code)))[0]

    def uv(self):
        n = shift = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n

    def string(self):
        n = self.uv() - 1 if self.flexible else self.fixed("h")
        return None if n < 0 else self.take(n).decode()

    def count(self):
        return self.uv() - 1 if self.flexible else self.fixed("i")

    def tags(self):
        if self.flexible:
            for _ in range(self.uv()):
                self.uv()
                self.take(self.uv())


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed by the broker")
        data += chunk
    return data


def recv_frame(s):
    (n,) = struct.unpack(">i", recv_exact(s, 4))
    return recv_exact(s, n)


def call(port, api, version, ctx, timeout_s=TIMEOUT_S):
    """Sends one valid request on a new connection; returns the response
    after its correlation id (and header tagged fields)."""
    req = encode_request(api, version, ctx, correlation_id=4242)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(req.frame())
        frame = recv_frame(s)
    r = Reader(frame)
    assert r.fixed("i") == 4242, f"correlation id of {req.desc}"
    if version >= FLEXIBLE_FROM[api] and api != 18:
        r.flexible = True
        r.tags()
    r.flexible = version >= FLEXIBLE_FROM[api]
    return r


def answers(port, timeout_s=HEALTH_TIMEOUT_S, ctx=None):
    """None when the shard on `port` answers ApiVersions v0 and Metadata v1
    within `timeout_s`, else what went wrong."""
    try:
        r = call(port, 18, 0, ctx, timeout_s)
        if r.fixed("h") != 0:
            return "ApiVersions answered with an error"
        if ctx is not None:
            r = call(port, 3, 1, ctx, timeout_s)
            if r.count() < 1:
                return "Metadata listed no broker"
    except (OSError, AssertionError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def fetch_topic_id(port, ctx):
    r = call(port, 3, 12, ctx)
    r.fixed("i")  # throttle
    for _ in range(r.count()):  # brokers
        r.fixed("i"), r.string(), r.fixed("i"), r.string(), r.tags()
    r.string()  # cluster id
    r.fixed("i")  # controller
    assert r.count() == 1
    assert r.fixed("h") == 0, "metadata error for the fuzz topic"
    assert r.string() == ctx.topic
    return r.take(16)


def init_producer_id(port, ctx):
    r = call(port, 22, 0, ctx)
    r.fixed("i")
    assert r.fixed("h") == 0
    return r.fixed("q"), r.fixed("h")


# ---------------------------------------------------------------------------
# Mutations


def extremes(code):
    lo, hi = {"b": I8, "h": I16, "i": I32, "q": I64}[code]
    return [0, -1, 1, lo, hi, hi - 1, lo + 1, -2, hi // 2 + 1, 255, 0x7FFF, 0x10000]


def fit(code, v):
    """v wrapped into the range of the field's type."""
    bits = {"b": 8, "h": 16, "i": 32, "q": 64}[code]
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


UV_EXTREMES = [
    uvarint(0), uvarint(1), uvarint(2), uvarint(0x7F), uvarint(0x80), uvarint(1 << 31),
    uvarint((1 << 31) + 1), uvarint((1 << 32) - 1), uvarint(1 << 32), uvarint((1 << 64) - 1),
    overlong_uvarint(0, 5), overlong_uvarint(1, 10), overlong_uvarint(2, 10),
    b"\x80" * 10 + b"\x01",  # eleven bytes: longer than any varint
    b"\xff" * 5, b"\x80",  # a varint cut short
]


def mutate_field(rng, req, roles=None):
    fields = [f for f in req.fields if roles is None or f[3] in roles] or req.fields
    off, size, code, role = rng.choice(fields)
    data = bytearray(req.payload)
    if code == "uv":
        new = rng.choice(UV_EXTREMES)
        data[off:off + size] = new
        return bytes(data), f"field {role}@{off} uvarint={new.hex()}"
    v = fit(code, rng.choice(extremes(code) + [rng.randint(-(1 << 31), (1 << 31) - 1)]))
    data[off:off + size] = struct.pack(">" + code, v)
    return bytes(data), f"field {role}@{off} {code}={v}"


def mutate_tags(rng, req):
    """Bogus tagged fields where the encoding has an empty tag section."""
    tags = [f for f in req.fields if f[3] == "tags"]
    if not tags:
        return mutate_field(rng, req)
    off, size, _, _ = rng.choice(tags)
    choice = rng.randrange(5)
    if choice == 0:  # one field claiming a huge size
        new = uvarint(1) + uvarint(rng.choice([0, 1, 2, 7])) + rng.choice(UV_EXTREMES) + b"\x00" * 4
    elif choice == 1:  # a huge number of fields
        new = rng.choice(UV_EXTREMES) + b"\x00\x00"
    elif choice == 2:  # the same tag twice
        new = uvarint(2) + b"\x00\x01\x00\x00\x01\x00"
    elif choice == 3:  # tags out of order, with data
        new = uvarint(2) + b"\x05\x02ab\x01\x03xyz"
    else:  # a known tag (e.g. Fetch's cluster id) with junk in it
        n = rng.randint(0, 40)
        new = uvarint(1) + uvarint(rng.choice([0, 1, 2])) + uvarint(n) + bytes(rng.getrandbits(8) for _ in range(n))
    data = bytearray(req.payload)
    data[off:off + size] = new
    return bytes(data), f"tags@{off}={new[:24].hex()}"


def junk(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def mutate_bytes(rng, req):
    data = bytearray(req.payload)
    # Mostly leave the API key and version alone: a changed one is refused
    # before any body is decoded.
    start = 0 if rng.random() < 0.05 else 4
    kind = rng.choice(["bitflip", "bitflip", "byteset", "truncate", "extend", "insert", "delete", "duplicate"])
    if len(data) <= start + 1:  # cut down to (nearly) nothing already
        kind = "extend"
    if kind == "truncate" and len(data) <= 5:  # nothing left to cut past the header's first field
        kind = "extend"
    if kind == "bitflip":
        flips = []
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(start, len(data))
            bit = rng.randrange(8)
            data[i] ^= 1 << bit
            flips.append(f"{i}.{bit}")
        return bytes(data), "bitflip " + ",".join(flips)
    if kind == "byteset":
        sets = []
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(start, len(data))
            data[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01])
            sets.append(f"{i}={data[i]:02x}")
        return bytes(data), "byteset " + ",".join(sets)
    if kind == "truncate":
        n = rng.randint(4, len(data) - 1)
        return bytes(data[:n]), f"truncate to {n}"
    if kind == "extend":
        n = rng.choice([1, 2, 7, 64, 1000])
        return bytes(data) + junk(rng, n), f"extend +{n}"
    i = rng.randrange(start, len(data))
    if kind == "insert":
        n = rng.choice([1, 2, 4, 8, 100])
        return bytes(data[:i]) + junk(rng, n) + bytes(data[i:]), f"insert {n}@{i}"
    n = rng.randint(1, min(16, len(data) - i))
    if kind == "delete":
        return bytes(data[:i] + data[i + n:]), f"delete {n}@{i}"
    return bytes(data[:i + n] + data[i:]), f"duplicate {n}@{i}"


# --- Produce: batches whose CRC is valid but whose fields are absurd


_GZIP_ZEROS = {}


def gzip_zeros(size):
    """gzip of `size` zero bytes (made once per size: it takes a while)."""
    if size not in _GZIP_ZEROS:
        _GZIP_ZEROS[size] = gzip.compress(b"\x00" * size, compresslevel=9, mtime=0)
    return _GZIP_ZEROS[size]


def batch_mutations(rng, b):
    """Applies one absurd change to `b` (a Batch); returns its description."""
    recs = b.records if isinstance(b.records, list) else []
    kind = rng.choice([
        "count", "last_offset_delta", "base_offset", "timestamps", "record_length", "varint10",
        "varint11", "key_value_length", "headers", "offset_delta", "ts_delta", "compressed_junk",
        "gzip_junk_records", "gzip_bomb", "codec_invalid", "attributes", "producer", "sequence",
        "magic", "batch_length", "leader_epoch", "two_batches", "empty", "record_attributes",
        "overflow",
    ])
    if kind == "count":
        # Relative to a count an earlier change may have set to an extreme:
        # kept within the field (the seed 21 once overflowed it here).
        near = [min(b.count + 1, I32[1]), max(b.count - 1, I32[0])]
        b.count = rng.choice([I32[1], I32[1] - 1, -1, 0, I32[0], 1 << 20] + near)
        return f"recordsCount={b.count}"
    if kind == "last_offset_delta":
        b.last_offset_delta = rng.choice([I32[1], -1, I32[0], 0, b.count, 1 << 30])
        return f"lastOffsetDelta={b.last_offset_delta}"
    if kind == "base_offset":
        b.base_offset = rng.choice([I64[0], I64[1], -1, 1 << 62, I64[1] - 1])
        return f"baseOffset={b.base_offset}"
    if kind == "timestamps":
        b.base_ts = rng.choice([I64[0], I64[1], -1, 0, -2])
        b.max_ts = rng.choice([I64[0], I64[1], -1, 0, b.base_ts])
        return f"baseTimestamp={b.base_ts} maxTimestamp={b.max_ts}"
    if kind == "leader_epoch":
        b.leader_epoch = rng.choice([I32[0], I32[1], -2])
        return f"partitionLeaderEpoch={b.leader_epoch}"
    if kind == "producer":
        b.pid = rng.choice([I64[1], I64[0], -2, 0, 1 << 40])
        b.epoch = rng.choice([I16[1], -2, 0, I16[0]])
        b.seq = rng.choice([0, I32[1], -2, I32[1] - 1])
        return f"producerId={b.pid} epoch={b.epoch} baseSequence={b.seq}"
    if kind == "sequence":
        # A sequence at the top of its range: seq + count wraps.
        b.pid = rng.choice([I64[1], 1, 12345])
        b.epoch = 0
        b.seq = rng.choice([I32[1], I32[1] - 1, I32[0], -2])
        return f"producerId={b.pid} epoch=0 baseSequence={b.seq}"
    if kind == "magic":
        b.magic = rng.choice([0, 1, 3, -1, 127])
        return f"magic={b.magic}"
    if kind == "batch_length":
        true_length = len(b.encode()) - 12
        b.batch_length = rng.choice([0, -1, I32[0], I32[1], true_length - 1, true_length + 1, 1, 49])
        return f"batchLength={b.batch_length} (true {true_length})"
    if kind == "attributes":
        b.attributes = rng.choice([0x10, 0x20, 0x30, 0x08, 0x40, -1, 0x7FFF, 0x18])
        return f"attributes={b.attributes:#x}"
    if kind == "codec_invalid":
        b.attributes = rng.choice([5, 6, 7])
        return f"attributes={b.attributes} (no such codec)"
    if kind == "compressed_junk":
        codec = rng.randint(1, 4)
        b.attributes = codec
        n = rng.choice([0, 1, 10, 100, 1000])
        prefix = rng.choice([b"", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", b"\x82SNAPPY\x00",
                             b"\x04\x22\x4d\x18", b"\x28\xb5\x2f\xfd"])
        b.records = prefix + junk(rng, n)
        return f"codec {codec} with {len(b.records)} junk bytes (prefix {prefix.hex() or 'none'})"
    if kind == "gzip_junk_records":
        # Valid gzip of bytes that are not records (or of too few).
        b.attributes = 1
        inner = rng.choice([junk(rng, 50), b"\xff" * 30, b"", b.records_bytes()[:5]])
        b.records = gzip.compress(inner)
        return f"gzip of {len(inner)} non-record bytes"
    if kind == "gzip_bomb":
        # Small on the wire, large once inflated.
        size = rng.choice([1, 8, 32]) << 20
        b.attributes = 1
        b.records = gzip_zeros(size)
        return f"gzip of {size} zero bytes ({len(b.records)} on the wire)"
    if kind == "two_batches":
        other = simple_batch([b"second"])
        other.count = rng.choice([I32[1], 1, 0])
        b.trailer = other.encode()[:rng.choice([100, 30, 12, 61])]
        return f"a second batch after it (count {other.count}, {len(b.trailer)} bytes of it)"
    if kind == "empty":
        b.records = b""
        b.count = rng.choice([0, 1, 2])
        b.last_offset_delta = rng.choice([-1, 0])
        return f"no records, recordsCount={b.count}"
    if kind == "overflow":
        b.base_offset = I64[1]
        b.last_offset_delta = I32[1]
        b.base_ts = I64[1]
        b.max_ts = I64[1]
        for r in recs:
            r["parts"][1] = ("varint", I64[1])
        return "baseOffset, lastOffsetDelta, timestamps and deltas all at their maximum"
    if not recs:
        b.count = I32[1]
        return f"recordsCount={b.count}"
    rec = rng.choice(recs)
    parts = rec["parts"]
    if kind == "record_length":
        true_len = len(encode_parts(parts))
        rec["length"] = rng.choice([0, -1, I32[1], I64[0], I64[1], true_len + 1, true_len - 1, 1 << 40, -1000])
        return f"record length={rec['length']} (true {true_len})"
    if kind == "varint10":
        i = rng.choice([i for i, p in enumerate(parts) if p[0] == "varint"])
        target = rng.choice(["part", "length"])
        v = zigzag(parts[i][1]) if target == "part" else zigzag(len(encode_parts(parts)))
        new = rng.choice([overlong_uvarint(v, 10), overlong_uvarint(v, 6),
                          b"\xff" * 9 + b"\x01", b"\xff" * 9 + b"\x7f"])
        if target == "length":
            rec["length"] = new
        else:
            parts[i] = ("raw", new)
        return f"10-byte varint {new.hex()} for record {target} {i}"
    if kind == "varint11":
        i = rng.choice([i for i, p in enumerate(parts) if p[0] == "varint"])
        parts[i] = ("raw", b"\x80" * rng.choice([10, 11, 20]) + b"\x00")
        return f"over-long varint at record part {i}"
    if kind == "key_value_length":
        i = rng.choice([3, 5])
        parts[i] = ("varint", rng.choice([-2, -1000, I32[0], I32[1], I64[0], I64[1], 1 << 40, 100]))
        return f"record {'key' if i == 3 else 'value'} length={parts[i][1]}"
    if kind == "headers":
        i = 7
        parts[i] = ("varint", rng.choice([-1, -2, I32[1], I64[1], 1 << 40, 2, 1000]))
        return f"record header count={parts[i][1]}"
    if kind == "offset_delta":
        parts[2] = ("varint", rng.choice([I32[1], I32[0], -1, I64[1], I64[0], 1 << 40]))
        return f"record offsetDelta={parts[2][1]}"
    if kind == "ts_delta":
        parts[1] = ("varint", rng.choice([I64[1], I64[0], -1, 1 << 62]))
        return f"record timestampDelta={parts[1][1]}"
    # record_attributes
    parts[0] = ("i8", rng.choice([-1, 1, 0x7F]))
    return f"record attributes={parts[0][1]}"


def produce_batch(rng, ctx):
    """A fresh base batch for Produce: plain, idempotent, or gzip'd."""
    n = rng.randint(1, 4)
    values = [junk(rng, rng.choice([0, 1, 10, 100])) for _ in range(n)]
    keys = [rng.choice([None, b"k", junk(rng, 5)]) for _ in range(n)]
    headers = rng.choice([(), ((b"h", b"v"),), ((b"a", None), (b"b", b"xy"))])
    if rng.random() < 0.3 and ctx.pid >= 0:
        b = simple_batch(values, keys, pid=ctx.pid, epoch=ctx.epoch, seq=rng.randint(0, 1000), headers=headers)
    else:
        b = simple_batch(values, keys, headers=headers)
    if rng.random() < 0.2:
        b.attributes = 1
        b.records = gzip.compress(b.records_bytes())
    return b


# ---------------------------------------------------------------------------
# The fuzzer


def panics(lines):
    """The broker's panic and abort messages, without the backtraces."""
    out = []
    for i, line in enumerate(lines):
        if "panicked at" in line or "memory allocation of" in line or "fatal runtime error" in line:
            out += lines[i:i + 2] if "panicked at" in line else [line]
    return "".join(out) or "(none)"


def log_tail(lines, n=15):
    """The last n lines of the broker's log, backtraces left out."""
    kept = [line for line in lines if not re.match(r"\s+(\d+: |at )|stack backtrace:|note: Some details", line)]
    return kept[-n:]


class BrokerBroke(AssertionError):
    """The broker crashed or a shard stopped answering."""

    def __init__(self, message, kind, request=None, frame=None):
        super().__init__(message)
        self.kind, self.request, self.frame = kind, request, frame


class Fuzzer:
    def __init__(self, broker, seed, versions, ctx):
        self.broker, self.seed, self.ctx = broker, seed, ctx
        self.rng = random.Random(seed)
        self.ports = [broker.port + k for k in range(broker.shards)]
        self.versions = versions  # api -> (low, high) to encode
        self.socks = {}
        self.outcomes = {"reply": 0, "closed": 0, "timeout": 0}
        self.classes = {}
        self.sent = 0

    def tag(self):
        return f"CORELOG_FUZZ_SEED={self.seed}"

    def generate(self, index):
        """The index-th mutated request: (shard port, frame bytes,
        description, whether the frame's size prefix lies)."""
        rng = self.rng
        apis = sorted(self.versions)
        # Produce, whose record batches have the most structure, gets a
        # larger share.
        api = 0 if rng.random() < 0.25 else rng.choice(apis)
        low, high = self.versions[api]
        version = rng.randint(low, high)
        port = rng.choice(self.ports)
        corr = index + 1000
        if api == 0 and rng.random() < 0.6:
            batch = produce_batch(rng, self.ctx)
            changes = [batch_mutations(rng, batch) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
            req = encode_request(0, version, self.ctx, corr, batch)
            payload, what = req.payload, "batch: " + "; ".join(changes)
            self.classes["batch"] = self.classes.get("batch", 0) + 1
        else:
            req = encode_request(api, version, self.ctx, corr, produce_batch(rng, self.ctx) if api == 0 else None)
            roll = rng.random()
            if roll < 0.3:
                payload, what = mutate_field(rng, req, roles=("count", "length"))
                cls = "count/length"
            elif roll < 0.45:
                payload, what = mutate_field(rng, req)
                cls = "field"
            elif roll < 0.55:
                payload, what = mutate_tags(rng, req)
                cls = "tags"
            else:
                payload, what = mutate_bytes(rng, req)
                cls = what.split()[0]
            if rng.random() < 0.15:  # a second change on top
                second, more = mutate_bytes(rng, Request(api, version, payload, [], ""))
                payload, what = second, what + "; " + more
            self.classes[cls] = self.classes.get(cls, 0) + 1
        frame = struct.pack(">i", len(payload)) + payload
        lie = rng.random() < 0.01
        if lie:  # a size prefix that does not match the bytes sent
            size = rng.choice([len(payload) + 1, len(payload) - 1, 0, 1 << 30])
            frame = struct.pack(">i", size) + payload
            what += f"; frame size {size} for {len(payload)} bytes"
        return port, frame, f"#{index} {req.desc} to port {port}: {what}", lie

    def _sock(self, port):
        s = self.socks.get(port)
        if s is None:
            s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
            self.socks[port] = s
        return s

    def _drop(self, port):
        s = self.socks.pop(port, None)
        if s is not None:
            s.close()

    def send(self, port, frame):
        """"reply", "closed" (by the broker) or "timeout" (no reply in time:
        the connection is dropped so no late reply is mistaken for the next)."""
        try:
            s = self._sock(port)
            s.settimeout(REPLY_TIMEOUT_S)
            s.sendall(frame)
            recv_frame(s)
            return "reply"
        except socket.timeout:
            self._drop(port)
            return "timeout"
        except OSError:
            self._drop(port)
            return "closed"

    def fail(self, kind, what, frame):
        shown = frame.hex() if len(frame) <= 4096 else frame[:2048].hex() + f"... ({len(frame)} bytes)"
        raise BrokerBroke(f"{self.tag()}: {kind} after {what}\nrequest: {shown}\n"
                          f"outcomes so far {self.outcomes}\n---- broker panics ----\n"
                          f"{panics(self.broker.stderr_lines)}\n---- broker log (tail) ----\n"
                          + "".join(log_tail(self.broker.stderr_lines)), kind, what, frame)

    def broken(self, problem):
        """What is wrong, once a shard failed a probe: the process may be
        on its way out (an abort), so its exit is awaited, bounded."""
        try:
            code = self.broker.proc.wait(2)
            return f"broker exited with {code} ({problem})"
        except subprocess.TimeoutExpired:
            return f"shard unresponsive, process alive ({problem})"

    def check_alive(self, what, frame, full=False):
        code = self.broker.proc.poll()
        if code is not None:
            self.fail(f"broker exited with {code}", what, frame)
        for port in self.ports if full else []:
            problem = answers(port, HEALTH_TIMEOUT_S, self.ctx)
            if problem:
                self.fail(self.broken(f"port {port}: {problem}"), what, frame)

    def run(self, count, start=0):
        for i in range(start, start + count):
            port, frame, what, lie = self.generate(i)
            outcome = self.send(port, frame)
            if lie:  # the rest of the stream is out of step
                self._drop(port)
            self.outcomes[outcome] += 1
            self.sent += 1
            if outcome != "reply" or self.broker.proc.poll() is not None:
                # Did it take the shard down? Probe it at once, so the
                # request that did is the one reported.
                problem = answers(port, HEALTH_TIMEOUT_S)
                if problem or self.broker.proc.poll() is not None:
                    self.fail(self.broken(f"port {port}: {problem}"), what, frame)
            if (i + 1) % CHECK_EVERY == 0:
                self.check_alive(what, frame, full=True)
        self.close()

    def close(self):
        for port in list(self.socks):
            self._drop(port)


def served_versions(port, ctx):
    """ApiVersions v0 on a raw socket: the advertised range of every API."""
    r = call(port, 18, 0, ctx)
    assert r.fixed("h") == 0
    ranges = {}
    for _ in range(r.fixed("i")):
        key, low, high = r.fixed("h"), r.fixed("h"), r.fixed("h")
        ranges[key] = (low, high)
    return ranges


def fuzz_plan(broker, ctx):
    """The versions to fuzz: every advertised API, each in its advertised
    range; fails on an API without an encoder here."""
    advertised = served_versions(broker.port, ctx)
    missing = sorted(set(advertised) - set(ENCODERS))
    assert not missing, f"advertised APIs the fuzzer cannot encode: {missing}: add them to ENCODERS"
    return {api: (max(low, ENCODERS[api][2]), high) for api, (low, high) in advertised.items()}


def produce_answer(frame, version):
    """(error code, base offset) of the one partition a Produce answer
    carries."""
    r = Reader(frame[4:], version >= FLEXIBLE_FROM[0])
    r.tags()
    assert r.count() == 1
    r.string()
    assert r.count() == 1
    r.fixed("i")
    return r.fixed("h"), r.fixed("q")


def check_base_requests(broker, ctx, versions):
    """Every unmutated request is answered, in every version on every
    shard, and every version of Produce stores its batch (plain and gzip'd)
    on the partition's leader: the encoders are valid, so the mutations
    start from valid input and batches with a recomputed CRC reach the log."""
    gzipped = simple_batch([b"g0", b"g1"], [None, b"k"])
    gzipped.attributes = 1
    gzipped.records = gzip.compress(gzipped.records_bytes())
    for api, (low, high) in sorted(versions.items()):
        for version in range(low, high + 1):
            stored = []
            for batch in [ctx.batch, gzipped] if api == 0 else [None]:
                for k in range(broker.shards):
                    req = encode_request(api, version, ctx, correlation_id=77, batch=batch)
                    with socket.create_connection(("127.0.0.1", broker.port + k), timeout=TIMEOUT_S) as s:
                        s.sendall(req.frame())
                        try:
                            frame = recv_frame(s)
                        except OSError as e:
                            raise AssertionError(f"{req.desc} (valid) not answered: {e}\n{req.frame().hex()}\n"
                                                 + "".join(broker.stderr_lines[-5:]))
                    assert struct.unpack(">i", frame[:4])[0] == 77, req.desc
                    if api == 0:
                        stored.append(produce_answer(frame, version)[0] == 0)
            if api == 0:
                # One shard leads partition 0; the other answers NOT_LEADER.
                assert stored.count(True) == 2, f"Produce v{version}: stored on leaders {stored}"


def create_topic(broker, name):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # alive until the result arrives
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(TIMEOUT_S)


def produce_precious(broker, topic, n=300):
    """Records acknowledged (acks=all) before the fuzzing: {(partition,
    offset): (key, value)}."""
    create_topic(broker, topic)
    acked, errors = {}, []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5})
    rng = random.Random(SEED)
    for i in range(n):
        p.produce(topic, key=f"key-{i}".encode(), value=junk(rng, rng.randint(0, 300)), partition=i % 2,
                  on_delivery=delivered)
    assert p.flush(TIMEOUT_S) == 0
    assert not errors, errors[:3]
    assert len(acked) == n
    return acked


def read_back(broker, topic, count):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"fz-check-{SEED}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
    got = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < count and time.monotonic() < deadline:
        for m in c.consume(500, 0.5):
            assert m.error() is None, m.error()
            got[(m.partition(), m.offset())] = (m.key(), m.value())
    c.close()
    return got


def test_fuzzed_requests_neither_crash_the_broker_nor_lose_acknowledged_data(broker):
    tag = f"CORELOG_FUZZ_SEED={SEED}"
    precious = f"precious-{SEED}"
    acked = produce_precious(broker, precious)

    ctx = Ctx(SEED)
    create_topic(broker, ctx.topic)
    ctx.topic_id = fetch_topic_id(broker.port, ctx)
    ctx.pid, ctx.epoch = init_producer_id(broker.port, ctx)
    versions = fuzz_plan(broker, ctx)
    check_base_requests(broker, ctx, versions)

    fuzzer = Fuzzer(broker, SEED, versions, ctx)
    started = time.monotonic()
    fuzzer.run(REQUESTS)
    elapsed = time.monotonic() - started
    print(f"{tag}: {fuzzer.sent} requests in {elapsed:.1f} s, outcomes {fuzzer.outcomes}, "
          f"mutations {fuzzer.classes}")
    # Every kind of outcome happened: the mutations reached the decoders
    # (closed) and valid-enough requests were served (reply).
    assert fuzzer.outcomes["reply"] > 0 and fuzzer.outcomes["closed"] > 0, f"{tag}: {fuzzer.outcomes}"

    check_intact(broker, ctx, precious, acked, tag)
    # Whatever the fuzzing got stored must not keep the broker from stopping
    # cleanly and starting again (log recovery reads it all).
    assert broker.stop() == 0, (
        f"{tag}: the broker did not stop cleanly after the fuzzing:\n{panics(broker.stderr_lines)}")
    broker.start()
    check_intact(broker, ctx, precious, acked, tag)


def check_intact(broker, ctx, precious, acked, tag):
    for k in range(broker.shards):
        problem = answers(broker.port + k, HEALTH_TIMEOUT_S, ctx)
        assert problem is None, f"{tag}: shard {k}: {problem}"
    assert broker.proc.poll() is None, f"{tag}: broker exited:\n{panics(broker.stderr_lines)}"
    got = read_back(broker, precious, len(acked))
    lost = sorted(set(acked) - set(got))
    changed = sorted(k for k in set(acked) & set(got) if acked[k] != got[k])
    extra = sorted(set(got) - set(acked))
    assert not lost and not changed and not extra, (
        f"{tag}: acknowledged records: {len(lost)} lost (first {lost[:5]}), {len(changed)} changed "
        f"(first {changed[:5]}), {len(extra)} unexpected (first {extra[:5]})")
