#!/usr/bin/env bash
# How long a clean stop takes with many partitions: SIGTERM to exit of a
# node serving PARTITIONS partitions (two topics, records in most of them),
# then the next start (open and recover) and its stop, ROUNDS times.
#
#   bash bench/stop.sh [PARTITIONS] [ROUNDS]     (default 18000 3; as root for ulimit)
#
# Uses target/release/corelog (CORELOG_BIN to change). Prints one line per
# round: start seconds (spawn to "ready"), stop seconds (SIGTERM to exit) and
# the exit status (0 clean; 75 when a shard did not stop within 45 s).
set -euo pipefail
PARTITIONS=${1:-18000}
ROUNDS=${2:-3}
BIN=${CORELOG_BIN:-target/release/corelog}
PORT=${PORT:-19092}
# Two files per partition, and room for connections.
want=$((PARTITIONS * 2 + 1000)); hard=$(ulimit -Hn)
ulimit -n $((want < hard ? want : hard))
DIR=$(mktemp -d /tmp/corelog-stop.XXXXXX)
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
echo "log: $DIR.log" >&2

start() {
    local t0=$(date +%s.%N)
    coproc SERVE { exec "$BIN" serve --data-dir "$DIR" --port $PORT --metrics-port 0 \
        --max-partitions $((PARTITIONS + 100)) 2>>"$DIR.log"; }
    PID=$SERVE_PID
    local line
    while read -r line <&"${SERVE[0]}"; do [ "$line" = ready ] && break; done
    START_S=$(echo "$(date +%s.%N) - $t0" | bc)
}

stop() {
    # Other writes (an earlier run's files being removed) out of the way
    # first: the stop syncs the whole file system.
    sync
    local t0=$(date +%s.%N)
    kill -TERM $PID
    STOP_RC=0
    wait $PID || STOP_RC=$?
    STOP_S=$(echo "$(date +%s.%N) - $t0" | bc)
}

start
half=$((PARTITIONS / 2))
for t in wide-a wide-b; do
    "$BIN" topic create $t --partitions $half --bootstrap 127.0.0.1:$PORT
    seq 1 $((half * 2)) | sed 's/^/k/; s/$/:v/' |
        "$BIN" produce $t --key-separator : --bootstrap 127.0.0.1:$PORT
done
stop
echo "created: start ${START_S}s, stop ${STOP_S}s exit $STOP_RC ($PARTITIONS partitions)"
for r in $(seq 1 "$ROUNDS"); do
    start
    stop
    echo "round $r: start ${START_S}s, stop ${STOP_S}s exit $STOP_RC ($PARTITIONS partitions)"
done
