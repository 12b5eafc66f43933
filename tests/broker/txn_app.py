"""A consume-transform-produce application with exactly-once semantics,
as stream processors run it: read a batch of `src` as a group member
(read_committed), write each record's output to `dst` in a transaction
that also commits the group's input offsets, repeat until killed. The
tests SIGKILL it mid-run and start it again.

Usage: txn_app.py BOOTSTRAP SRC DST GROUP TRANSACTIONAL_ID [DIE_IN_TXN]

With DIE_IN_TXN = N the app SIGKILLs itself in its N-th transaction,
after its outputs and offsets were sent and before the commit: the
worst moment, chosen rather than hoped for."""

import os
import signal
import sys

from confluent_kafka import Consumer, Producer


def main():
    bootstrap, src, dst, group, tid = sys.argv[1:6]
    die_in = int(sys.argv[6]) if len(sys.argv) > 6 else -1
    transactions = 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                  "session.timeout.ms": 6000})
    c.subscribe([src])
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 2})
    p.init_transactions(60)
    print("ready", flush=True)
    while True:
        batch = [m for m in c.consume(50, 0.5) if m.error() is None]
        if not batch:
            continue
        p.begin_transaction()
        for m in batch:
            p.produce(dst, value=b"out-" + m.value(), partition=m.partition())
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 60)
        transactions += 1
        if transactions == die_in:
            p.flush(60)
            os.kill(os.getpid(), signal.SIGKILL)
        p.commit_transaction(60)


if __name__ == "__main__":
    main()
