#!/usr/bin/env bash
# Issue 16: what a 4 KiB O_DIRECT write plus fdatasync costs through
# io_uring, by how the file's blocks stand: appended past the end (what a
# segment's tail does), written into a sparse hole, into fallocated
# (unwritten) extents, or over blocks already written (a pre-written,
# recycled segment). Process CPU (io_uring's io-wq workers included) and
# context switches from /usr/bin/time, latencies from fio; the cases
# alternate per round. Usage: bash bench/fio_extend.sh [MiB per case] [rounds] [dir]
set -euo pipefail
mib=${1:-32}
rounds=${2:-3}
dir=${3:-$(mktemp -d -p "${TMPDIR:-/var/tmp}" fio-extend.XXXXXX)}
here=$(cd "$(dirname "$0")" && pwd)
common=(--ioengine=io_uring --direct=1 --rw=write --bs=4k --size="${mib}m" --fdatasync=1
        --iodepth=1 --output-format=json)
echo "round case writes/s write_p50_us write_p99_us sync_p50_us sync_p99_us cpu_s_per_1k_writes ctx_switches_per_write"
for r in $(seq 1 "$rounds"); do
  for c in append hole fallocated overwrite; do
    f="$dir/$c"
    rm -f "$f"
    case $c in
      append) touch "$f"; extra=(--file_append=1 --fallocate=none) ;;
      hole) extra=(--fallocate=none) ;;
      fallocated) extra=(--fallocate=native) ;;
      overwrite) extra=(--fallocate=none --overwrite=1) ;;
    esac
    if [ "$c" = overwrite ]; then
      # Written and synced before the measured pass.
      dd if=/dev/zero of="$f" bs=1M count="$mib" oflag=direct status=none conv=fsync
    fi
    /usr/bin/time -f "%S %U %c %w" -o "$dir/time" \
      fio --name="$c" --filename="$f" "${common[@]}" "${extra[@]}" > "$dir/out.json"
    python3 "$here/fio_extend.py" "$r" "$c" "$dir/out.json" "$dir/time"
    rm -f "$f"
  done
done
