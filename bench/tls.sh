#!/usr/bin/env bash
# The built-in load generator over PLAINTEXT and TLS against one two-shard
# node that has both listeners: ROUNDS rounds, each producing RECORDS
# records of RECORD_SIZE bytes (acks=all, 1,000-record batches, 6
# partitions, one connection per shard, 5 requests in flight) over each
# protocol into a topic of its own, the order alternating per round; then
# the node restarts and every topic is consumed from the start, cold from
# the segment files (spliced to PLAINTEXT consumers, read and encrypted by
# rustls for TLS ones), the order alternating too. Broker CPU is the
# node's utime + stime over the phase, per GB of record values.
#
#   bash bench/tls.sh [RECORDS] [RECORD_SIZE] [ROUNDS] [DIR]
#                                   (default 5000000 100 3 ./bench-data-tls)
#
# Uses target/release/corelog (CORELOG_BIN to change, as a path) and openssl for a
# throwaway CA and an ECDSA P-256 server certificate. Prints one line per
# phase: protocol, phase, round, records/s, MB/s, broker CPU-s per GB.
set -euo pipefail
RECORDS=${1:-5000000}
SIZE=${2:-100}
ROUNDS=${3:-3}
DIR=${4:-./bench-data-tls}
C=${CORELOG_BIN:-target/release/corelog}
PORT=${PORT:-24200}
TLS_PORT=$((PORT + 10))
PID=
trap 'kill -9 $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
rm -rf "$DIR"; mkdir -p "$DIR/pki"

pki() {
  local p=$DIR/pki
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$p/ca.key" \
    -out "$p/ca.pem" -days 2 -subj "/CN=bench CA" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' > "$p/ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$p/server.key" \
    -out "$p/server.csr" -subj "/CN=localhost" 2>/dev/null
  openssl x509 -req -in "$p/server.csr" -CA "$p/ca.pem" -CAkey "$p/ca.key" -CAcreateserial \
    -out "$p/server.pem" -days 2 -extfile "$p/ext" 2>/dev/null
  printf 'security.protocol=SSL\nssl.ca.location=%s\n' "$p/ca.pem" > "$DIR/ssl.properties"
  printf 'security.protocol=PLAINTEXT\n' > "$DIR/plaintext.properties"
}

start() {
  "$C" serve --data-dir "$DIR/data" --shards 2 --metrics-port 0 \
    --listener "PLAINTEXT://127.0.0.1:$PORT" --listener "SSL://127.0.0.1:$TLS_PORT" \
    --ssl-certificate "$DIR/pki/server.pem" --ssl-key "$DIR/pki/server.key" > "$DIR/node.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    grep -q '^ready' "$DIR/node.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "the node did not start: $(cat "$DIR/node.log")" >&2
  exit 1
}

stop() {
  kill "$PID"
  wait "$PID" || true
}

cpu_ticks() {
  awk '{ print $14 + $15 }' "/proc/$PID/stat"
}

run() { # produce|consume, PLAINTEXT|SSL, round
  local phase=$1 proto=$2 round=$3 port=$PORT before after
  [ "$proto" = SSL ] && port=$TLS_PORT
  before=$(cpu_ticks)
  # No kcat on the PATH: its PLAINTEXT comparison would add to the CPU.
  env PATH=/nonexistent "$C" bench "$phase" --bootstrap "127.0.0.1:$port" \
    --command-config "$DIR/$(echo "$proto" | tr A-Z a-z).properties" \
    --topic "tls-$proto-$round" --partitions 6 --records "$RECORDS" --record-size "$SIZE" \
    --batch-records 1000 --runs 1 --dir "$DIR" --results "$DIR/results" > /dev/null 2>&1
  after=$(cpu_ticks)
  python3 "$(dirname "$0")/phase.py" "$DIR/results/$phase.json" \
    "$(printf '%-9s %-7s round %s' "$proto" "$phase" "$round")" "$before" "$after"
}

rounds() { # produce|consume: every round on a node started for the phase
  start
  for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="PLAINTEXT SSL"; else order="SSL PLAINTEXT"; fi
    for p in $order; do run "$1" "$p" "$r"; done
  done
  stop
}

pki
rounds produce
rounds consume
