#!/usr/bin/env bash
# Two corelog binaries on the same produce workload, alternating: each
# round starts a fresh two-shard node (`--flush fsync`) from binary A and
# then from B (B then A on even rounds) and runs PHASES produce phases in
# a row against it, each with the same generator (binary A's `corelog
# bench produce`, the arguments after `--`) into a topic of its own.
# Prints per phase: the binary, the round, records/s, the broker's CPU-s
# per GB of record values and its resident memory after the phase, so a
# change's effect on speed, CPU and memory (and whether it grows as the
# node serves more) is read in pairs measured minutes apart.
#
#   bash bench/ab.sh A_BIN B_BIN [ROUNDS] [PHASES] [-- produce flags]
#       (default 3 rounds, 2 phases, --records 2000000 --batch-records 10)
set -euo pipefail
A=$(realpath "$1")
B=$(realpath "$2")
shift 2
ROUNDS=3
PHASES=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ROUNDS=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then PHASES=$1; shift; fi
[ "${1:-}" = "--" ] && shift
FLAGS=("$@")
[ ${#FLAGS[@]} = 0 ] && FLAGS=(--records 2000000 --batch-records 10)
DIR=${DIR:-./bench-data-ab}
PORT=${PORT:-24400}
PID=
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT

run_node() { # label, binary, round
  local label=$1 bin=$2 round=$3
  rm -rf "$DIR"; mkdir -p "$DIR"
  "$bin" serve --data-dir "$DIR/data" --port "$PORT" --shards 2 --metrics-port 0 > "$DIR/node.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    grep -q '^ready' "$DIR/node.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q '^ready' "$DIR/node.log" || { echo "the node did not start: $(cat "$DIR/node.log")" >&2; exit 1; }
  for phase in $(seq 1 "$PHASES"); do
    local before after rss
    before=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    env PATH=/nonexistent "$A" bench produce --bootstrap "127.0.0.1:$PORT" --topic "ab-$phase" \
      --runs 1 --dir "$DIR" --results "$DIR/results" "${FLAGS[@]}" > /dev/null 2>&1
    after=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$PID/status")
    python3 "$(dirname "$0")/phase.py" "$DIR/results/produce.json" \
      "$label round $round phase $phase" "$before" "$after" "$rss"
  done
  kill "$PID"
  wait "$PID" || true
}

for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run_node A "$A" "$r"; run_node B "$B" "$r"
  else run_node B "$B" "$r"; run_node A "$A" "$r"; fi
done
