#!/usr/bin/env bash
# The authorizer's cost on the produce path: `corelog bench produce` into a
# two-shard node with the authorizer off (A) and on (B, with 203 ACLs to
# scan: the producer's own two, and 100 ALLOW + 100 DENY bindings of other
# users on other topics), alternating A/B and B/A, ROUNDS pairs, each run on
# a fresh data directory under DIR.
#
#   bash bench/authz.sh [RECORDS] [BATCH_RECORDS] [ROUNDS] [DIR]
#                                   (default 1000000 10 5 ./bench-data-authz)
#
# Uses target/release/corelog (CORELOG_BIN to change). The ACLs are added
# through `corelog acl` while User:ANONYMOUS is a super user, then the node
# restarts without super users, so every request of the generator (PLAINTEXT,
# User:ANONYMOUS) is checked against the bindings. Prints one line per run:
# A or B, the ACL count, and the generator's result line.
set -euo pipefail
RECORDS=${1:-1000000}
BATCH=${2:-10}
ROUNDS=${3:-5}
DIR=${4:-./bench-data-authz}
C=${CORELOG_BIN:-target/release/corelog}
PORT=${PORT:-24100}
B="--bootstrap 127.0.0.1:$PORT"
PID=
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT

start() { # data-dir, serve flags...
  local data=$1; shift
  "$C" serve --data-dir "$data" --port "$PORT" --shards 2 --metrics-port 0 "$@" > "$data.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    grep -q '^ready' "$data.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the node did not start: $(cat "$data.log")" >&2
  exit 1
}

stop() {
  kill "$PID"
  wait "$PID" || true
}

run() { # A or B
  local mode=$1 data
  rm -rf "$DIR"; mkdir -p "$DIR"; data=$DIR/data
  if [ "$mode" = B ]; then
    start "$data" --authorizer on --super-users User:ANONYMOUS
    "$C" acl add --cluster --allow-principal User:ANONYMOUS --operation Create --operation Describe $B >/dev/null
    "$C" acl add --topic bench --resource-pattern-type prefixed --allow-principal User:ANONYMOUS \
      --operation All $B >/dev/null
    for i in $(seq 1 100); do
      "$C" acl add --topic "other-$i" --allow-principal "User:u$i" --deny-principal "User:v$i" \
        --operation Write $B >/dev/null
    done
    stop
    start "$data" --authorizer on
  else
    start "$data"
  fi
  local acls out
  acls=$("$C" acl list $B 2>/dev/null | grep -c permissionType || true)
  out=$("$C" bench produce $B --records "$RECORDS" --batch-records "$BATCH" --topic "bench-$mode" \
    --dir "$DIR" --results "$DIR/results" 2>&1 | grep 'records/s' | head -1)
  echo "$mode acls=$acls $out"
  stop
}

for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run A; run B; else run B; run A; fi
done
