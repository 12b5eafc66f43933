"""A stream-processing application in quixstreams' exactly-once mode
(`processing_guarantee="exactly-once"`, from PyPI): a running count per
key, kept in quixstreams' state store (RocksDB, backed by a changelog
topic it creates on the broker), each input's count written to DST. The
tests SIGKILL it mid-run and start it again on an empty state directory,
so the counts come back from the changelog topic alone.

Runs in its own virtualenv (.venv/quix, made by ci/install: quixstreams
pins an older confluent-kafka than the tests use).

Usage: quix_app.py BOOTSTRAP SRC DST GROUP STATE_DIR [DIE_AT]

Checkpoints commit every 100 inputs or half a second. With DIE_AT = S the app SIGKILLs
itself while counting the input whose `seq` is S, inside a checkpoint
whose outputs, counts and offsets were partly sent and not committed."""

import os
import signal
import sys

from quixstreams import Application

COMMIT_EVERY = 100


def main():
    bootstrap, src, dst, group, state_dir = sys.argv[1:6]
    die_at = int(sys.argv[6]) if len(sys.argv) > 6 else -1
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_every=COMMIT_EVERY,
        commit_interval=0.5,
        state_dir=state_dir,
        # The killed run's member leaves the group when its session ends.
        consumer_extra_config={"session.timeout.ms": 6000},
        # One transactional id across runs, as a deployment of this app
        # has it: the restart fences the killed run and aborts its open
        # transaction at once (quixstreams' default, a random id per run,
        # leaves it to the coordinator's timeout).
        producer_extra_config={"transactional.id": f"tid-{group}"},
        loglevel="WARNING",
    )
    inputs = app.topic(src, value_deserializer="json", key_deserializer="str")
    outputs = app.topic(dst, value_serializer="json", key_serializer="str")

    def count(value, state):
        if value["seq"] == die_at:
            # The worst moment: the checkpoint's outputs so far on the
            # broker (quixstreams' own producer, flushed), not committed.
            app._producer.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        n = state.get("n", 0) + 1
        state.set("n", n)
        return {"seq": value["seq"], "n": n}

    app.dataframe(inputs).apply(count, stateful=True).to_topic(outputs)
    app.run()


if __name__ == "__main__":
    main()
