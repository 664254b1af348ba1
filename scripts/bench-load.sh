#!/usr/bin/env bash
# Build wxkf and the load client in release mode, then run the bounded loopback load run
# against `wxkf serve`, once with the SQLite store (the default) and once with the memory
# store. Extra arguments go to both runs, for example: --messages 10000 --concurrency 32.
set -euo pipefail

cd "$(dirname "$0")/.."
target_dir=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet -p wxkf -p wxkf-bench --bin wxkf --bin load
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
for store in sqlite memory; do
    echo
    "$target_dir/release/load" --store "$store" "$@" || status=$?
done
exit "$status"
