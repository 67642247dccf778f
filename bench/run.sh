#!/usr/bin/env bash
# The browser benchmark of the IndexedDB store (`make bench`): builds the bench crate for wasm,
# runs bench/index.html in headless Chromium (each write method in a fresh profile) and writes
# docs/benchmarks.md. Not part of `make test`. Takes about 35 minutes; run it on an otherwise idle
# machine.
#   BENCH_ROUNDS=5             rounds of every write method at 100,000 messages and more, three
#                              times as many below (the median is reported)
#   BENCH_SIZES=10000,100000   message counts
#   BENCH_PROFILE_DIR=/dev/shm where the browser profile goes (default /dev/shm if present)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_wasm_target
ensure_wasm_bindgen_cli
ensure_chromium
ensure_npm_packages bench

step "Building the bench crate (release, wasm32)"
cargo build -p chat-sync-bench --release --target wasm32-unknown-unknown
wasm-bindgen --target web --out-dir bench/pkg \
    target/wasm32-unknown-unknown/release/chat_sync_bench.wasm

step "Running the benchmark in headless Chromium"
info "load average now: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
node bench/run.mjs
