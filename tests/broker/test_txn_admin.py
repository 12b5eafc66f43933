"""Transactions administered through a real admin client (kafka-python's
KIP-664 tooling, what `kafka-transactions.sh` does): ListTransactions on
every broker lists each transactional id once, on its coordinator, with
Kafka's filters; DescribeTransactions shows an open transaction's
partitions, timeout and start; find-hanging finds it; and an operator's
abort (DescribeProducers, then WriteTxnMarkers to the partition's leader)
ends it in that partition, so read_committed readers move past it."""

import signal
import time
import uuid

import kafka.errors as Errors
import pytest
from kafka import KafkaAdminClient
from kafka.admin._transactions import AbortTransactionSpec
from kafka.structs import TopicPartition as KTopicPartition

from conftest import wait_until
from test_transactions import TIMEOUT_S, create, read_all, stable_and_high, txn_producer

TXN_TIMEOUT_MS = 120_000


def listed(admin, **filters):
    """(transactional id, producer id, state) of every broker's listing,
    and how many brokers listed each id."""
    seen = {}
    rows = set()
    for listings in admin.list_transactions(**filters).values():
        for t in listings:
            seen[t.transactional_id] = seen.get(t.transactional_id, 0) + 1
            rows.add((t.transactional_id, t.producer_id, t.state.value))
    assert all(n == 1 for n in seen.values()), f"an id listed by several brokers: {seen}"
    return rows


def test_transactions_are_listed_described_found_hanging_and_aborted(broker):
    topic = f"txa-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 2)
    open_tid, done_tid = f"open-{topic}", f"done-{topic}"

    before = int(time.time() * 1000)
    hanging = txn_producer(broker.bootstrap, open_tid, **{"transaction.timeout.ms": TXN_TIMEOUT_MS})
    hanging.begin_transaction()
    for i in range(6):
        hanging.produce(topic, value=f"open-{i}", partition=i % 2)
    assert hanging.flush(TIMEOUT_S) == 0
    after = int(time.time() * 1000)
    done = txn_producer(broker.bootstrap, done_tid)
    done.begin_transaction()
    for i in range(4):
        done.produce(topic, value=f"done-{i}", partition=i % 2)
    done.commit_transaction(TIMEOUT_S)

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        # EndTxn answers once PrepareCommit is stored; CompleteCommit
        # follows once every marker is written.
        wait_until(lambda: admin.describe_transactions([done_tid])[done_tid].state.value
                   == "CompleteCommit", TIMEOUT_S, "the committed transaction complete")
        described = admin.describe_transactions([open_tid, done_tid])
        d = described[open_tid]
        assert d.state.value == "Ongoing"
        assert d.topic_partitions == {KTopicPartition(topic, 0), KTopicPartition(topic, 1)}
        assert d.transaction_timeout_ms == TXN_TIMEOUT_MS
        assert before <= d.transaction_start_time_ms <= after
        assert described[done_tid].state.value == "CompleteCommit"
        open_pid, done_pid = d.producer_id, described[done_tid].producer_id
        assert open_pid != done_pid
        with pytest.raises(Errors.TransactionalIdNotFoundError):
            admin.describe_transactions([f"never-{topic}"])

        both = {(open_tid, open_pid, "Ongoing"), (done_tid, done_pid, "CompleteCommit")}
        assert listed(admin) >= both
        assert (open_tid, open_pid, "Ongoing") in listed(admin, state_filters=["Ongoing"])
        assert all(s == "Ongoing" for _, _, s in listed(admin, state_filters=["Ongoing"]))
        assert listed(admin, producer_id_filters=[done_pid]) == {(done_tid, done_pid, "CompleteCommit")}
        assert listed(admin, state_filters=["NoSuchState"]) == set()
        # Running longer than an hour: none of these; longer than 0 ms: both.
        assert listed(admin, producer_id_filters=[open_pid, done_pid], duration_filter_ms=3_600_000) == set()
        assert listed(admin, producer_id_filters=[open_pid, done_pid], duration_filter_ms=0) == both

        # A threshold of 0 (the tool adds 5 minutes to the timeout given).
        found = [h for h in admin.find_hanging_transactions(max_transaction_timeout_ms=-300_000)
                 if h["transactional_id"] == open_tid]
        assert len(found) == 1 and found[0]["topic_partitions"] == sorted(d.topic_partitions)

        # The operator's abort of partition 0, as `kafka-transactions.sh
        # abort` does it: the producer's epoch and coordinator epoch from
        # DescribeProducers, then WriteTxnMarkers to the leader.
        tp = KTopicPartition(topic, 0)
        (state,) = [p for p in admin.describe_producers([tp])[tp].active_producers
                    if p.producer_id == open_pid]
        assert state.current_transaction_start_offset >= 0
        admin.abort_transaction(AbortTransactionSpec(tp, open_pid, state.producer_epoch,
                                                     state.coordinator_epoch))
        (state,) = [p for p in admin.describe_producers([tp])[tp].active_producers
                    if p.producer_id == open_pid]
        assert state.current_transaction_start_offset == -1
    finally:
        admin.close()

    # Partition 0 is stable again: 3 + 2 records and 2 markers; partition
    # 1 still held by the open transaction's first record.
    assert stable_and_high(broker.bootstrap, topic, 0) == (7, 7)
    lso1, high1 = stable_and_high(broker.bootstrap, topic, 1)
    assert (lso1, high1) == (0, 6)
    # The producer still commits: partition 1's records become readable,
    # partition 0's stay aborted.
    hanging.commit_transaction(TIMEOUT_S)
    expected = sorted([f"done-{i}" for i in range(4)] + ["open-1", "open-3", "open-5"])
    read_all(broker.bootstrap, topic, 2, "read_committed", expected)
    wait_until(lambda: stable_and_high(broker.bootstrap, topic, 1) == (7, 7), TIMEOUT_S,
               "partition 1's commit marker")


def test_an_idle_transactional_id_is_forgotten_for_good_an_open_one_never(make_broker):
    """`--transactional-id-expiration-ms` (Kafka's
    transactional.id.expiration.ms): an id with no open transaction and no
    change for that long is forgotten (a tombstone: still forgotten after a
    SIGKILL and restart) and starts afresh with a new producer id; an id
    whose transaction is open is kept whatever its age."""
    b = make_broker(shards=1, extra_args=["--transactional-id-expiration-ms", "2000"]).start()
    topic = f"txe-{uuid.uuid4().hex[:8]}"
    create(b.bootstrap, topic, 1)
    open_tid, idle_tid = f"open-{topic}", f"idle-{topic}"
    held = txn_producer(b.bootstrap, open_tid, **{"transaction.timeout.ms": TXN_TIMEOUT_MS})
    held.begin_transaction()
    held.produce(topic, value="held", partition=0)
    assert held.flush(TIMEOUT_S) == 0
    idle = txn_producer(b.bootstrap, idle_tid)
    idle.begin_transaction()
    idle.produce(topic, value="done", partition=0)
    idle.commit_transaction(TIMEOUT_S)

    def state(admin, tid):
        try:
            return admin.describe_transactions([tid])[tid]
        except Errors.TransactionalIdNotFoundError:
            return None

    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        first_pid = state(admin, idle_tid).producer_id
        wait_until(lambda: state(admin, idle_tid) is None, TIMEOUT_S, "the idle id forgotten")
        # The open one changed last before the idle one did: kept.
        assert state(admin, open_tid).state.value == "Ongoing"
    finally:
        admin.close()
    b.stop(signal.SIGKILL)
    b.start()
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        wait_until(lambda: state(admin, open_tid) is not None, TIMEOUT_S, "the coordinator loaded")
        assert state(admin, idle_tid) is None, "the tombstone replayed"
        again = txn_producer(b.bootstrap, idle_tid)
        again.begin_transaction()
        again.produce(topic, value="again", partition=0)
        again.commit_transaction(TIMEOUT_S)
        assert state(admin, idle_tid).producer_id != first_pid
    finally:
        admin.close()


def test_write_txn_markers_v0_aborts_as_v1_does(broker):
    """WriteTxnMarkers v0 (Kafka 3.9 served it; its non-flexible layout
    and headers are rewritten into v1's): an operator's abort sent in v0
    to the partition's leader ends the open transaction there, answered in
    v0's layout."""
    import socket
    import struct

    from test_fuzz_live import recv_frame
    from test_transactions import leader_of

    topic = f"txv0-{uuid.uuid4().hex[:8]}"
    create(broker.bootstrap, topic, 1)
    p = txn_producer(broker.bootstrap, f"open-{topic}", **{"transaction.timeout.ms": TXN_TIMEOUT_MS})
    p.begin_transaction()
    p.produce(topic, value="open", partition=0)
    assert p.flush(TIMEOUT_S) == 0
    assert stable_and_high(broker.bootstrap, topic, 0) == (0, 1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        tp = KTopicPartition(topic, 0)
        (state,) = admin.describe_producers([tp])[tp].active_producers
    finally:
        admin.close()

    name = topic.encode()
    body = (struct.pack(">iqhbi", 1, state.producer_id, state.producer_epoch, 0, 1)
            + struct.pack(">h", len(name)) + name + struct.pack(">ii", 1, 0)
            + struct.pack(">i", state.coordinator_epoch))
    client_id = b"v0-tool"
    header = struct.pack(">hhih", 27, 0, 77, len(client_id)) + client_id  # request header v1
    port = broker.port + leader_of(broker.bootstrap, topic, 0)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as s:
        s.sendall(struct.pack(">i", len(header + body)) + header + body)
        frame = recv_frame(s)
    # Response header v0 (the correlation id alone), then v0's body.
    expected = (struct.pack(">iiqi", 77, 1, state.producer_id, 1) + struct.pack(">h", len(name)) + name
                + struct.pack(">iih", 1, 0, 0))
    assert frame == expected
    assert stable_and_high(broker.bootstrap, topic, 0) == (2, 2), "the record and its abort marker"
    # The producer's commit leaves that record aborted; its next
    # transaction's record is the only one read_committed reads.
    p.commit_transaction(TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, value="after", partition=0)
    p.commit_transaction(TIMEOUT_S)
    read_all(broker.bootstrap, topic, 1, "read_committed", ["after"])
    read_all(broker.bootstrap, topic, 1, "read_uncommitted", ["after", "open"])
