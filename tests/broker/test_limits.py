"""Connection limits against a real broker: idle connections are closed
(`--connections-max-idle-ms`), so is one whose request stalls
(`--request-arrival-timeout-ms`), and memory stays bounded by
`queued.max.request.bytes` when many connections declare huge frames."""

import select
import socket
import struct

from test_bad_input import closed_by_broker, recv_frame, request, still_serving
from test_metrics import scrape, total

from conftest import wait_until

TIMEOUT_S = 30
MiB = 1024 * 1024


def queued_bytes(broker):
    samples, _ = scrape(broker)
    return total(samples, "corelog_request_bytes_queued")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_an_idle_connection_is_closed(make_broker):
    """A connection served once and then silent for the idle limit is
    closed by the broker; a new one is served as before."""
    b = make_broker(extra_args=["--connections-max-idle-ms", "300"]).start()
    s = socket.create_connection(("127.0.0.1", b.port), timeout=TIMEOUT_S)
    s.sendall(request(18, 0, 1))
    assert struct.unpack(">i", recv_frame(s)[:4])[0] == 1
    # The broker closes it; without the limit this recv times out and fails.
    assert closed_by_broker(s)
    assert still_serving(b)


def test_a_stalled_request_closes_its_connection(make_broker):
    """A size and 10 of its 1,000 bytes, then nothing: the connection is
    closed once the arrival limit passes, its bytes leave the shard's
    budget, and the other connections are served throughout."""
    b = make_broker(extra_args=["--request-arrival-timeout-ms", "300"]).start()
    s = socket.create_connection(("127.0.0.1", b.port), timeout=TIMEOUT_S)
    s.sendall(struct.pack(">i", 1000) + b"\x00" * 10)
    assert closed_by_broker(s)
    wait_until(lambda: "did not arrive within" in b.log(), TIMEOUT_S, "the closing logged")
    wait_until(lambda: queued_bytes(b) == 0, TIMEOUT_S, "the stalled request's bytes released")
    assert still_serving(b)


def test_frames_declaring_100_mib_hold_at_most_the_shards_budget(broker):
    """100 connections to one shard each declare a 100 MiB frame and try to
    send 20 MiB of it. The shard admits frames while they fit in its 256 MiB
    of request bytes (two of them) and reads nothing of the others, so the
    process grows by tens of MiB, not the 2 GB that reading every
    connection took."""
    declared, sent_each, conns_n = 100 * MiB, 20 * MiB, 100
    before = rss_bytes(broker.proc.pid)
    conns = []
    for _ in range(conns_n):
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S)
        s.sendall(struct.pack(">i", declared))
        s.setblocking(False)
        conns.append(s)
    left = {s: sent_each for s in conns}
    chunk = b"\x00" * (256 * 1024)
    # Send until every connection has sent its 20 MiB or the broker stopped
    # reading all of those that have not (none writable for 2 s).
    rounds = 0
    while rounds < 20_000:
        rounds += 1
        pending = [s for s, n in left.items() if n > 0]
        if not pending:
            break
        _, writable, _ = select.select([], pending, [], 2.0)
        if not writable:
            break
        for s in writable:
            try:
                left[s] -= s.send(chunk[: min(len(chunk), left[s])])
            except BlockingIOError:
                pass
    done = sum(1 for n in left.values() if n == 0)
    queued = queued_bytes(broker)
    grown = rss_bytes(broker.proc.pid) - before
    for s in conns:
        s.close()
    assert done == 2, f"{done} connections sent their 20 MiB; the budget admits 2 frames"
    assert queued == 2 * declared, f"{queued} request bytes held"
    assert grown < 128 * MiB, f"the broker grew by {grown // MiB} MiB"
    wait_until(lambda: queued_bytes(broker) == 0, TIMEOUT_S, "every closed frame's bytes released")
    assert still_serving(broker)
