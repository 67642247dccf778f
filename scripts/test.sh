#!/usr/bin/env bash
# The one command that runs every test (also what `make test` and CI run).
# Fails (non-zero exit) at the first failing step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

START_ALL=$SECONDS
CURRENT_STEP=""
TIMINGS=()

# run_step "name" cmd...: run one step, print and record its elapsed time.
run_step() {
    local name="$1" start=$SECONDS
    shift
    CURRENT_STEP="$name"
    step "$name"
    "$@"
    local took=$((SECONDS - start))
    TIMINGS+=("$(printf '%5ss  %s' "$took" "$name")")
    info "done in ${took}s"
    CURRENT_STEP=""
}

on_exit() {
    local rc=$?
    echo
    if [[ ${#TIMINGS[@]} -gt 0 ]]; then
        echo "Step times:"
        printf '  %s\n' "${TIMINGS[@]}"
    fi
    if [[ $rc -eq 0 ]]; then
        echo "==> ALL TESTS PASSED ($((SECONDS - START_ALL))s total)"
    else
        echo "==> TESTS FAILED${CURRENT_STEP:+ in step: $CURRENT_STEP} (exit $rc, $((SECONDS - START_ALL))s total)" >&2
    fi
}
trap on_exit EXIT

run_step "Ensure wasm32-unknown-unknown target" ensure_wasm_target
# Node.js runs the package build and the npm tests at the end: a too old one fails here, not then.
run_step "Ensure Node.js $NODE_MIN_VERSION or newer" ensure_node
run_step "Formatting (cargo fmt --check)" cargo fmt --all -- --check
run_step "Lints (cargo clippy -D warnings)" cargo clippy --workspace --all-targets -- -D warnings
run_step "Native tests: protocol, engine, server (cargo test)" cargo test --workspace
# The engine's deterministic simulation over more seeds than `cargo test` runs (1,000): rare
# interleavings of faults show up only every few thousand seeds.
run_step "Engine simulation soak: 20,000 seeds (release build)" \
    env SIM_FIRST_SEED=1000 SIM_SEEDS=20000 cargo test --release -p chat-sync-engine --test simulation
# The client crate must compile for wasm (engine and protocol stay wasm-clean), and its
# browser-only code is linted there.
run_step "Lints of the wasm client (clippy --target wasm32)" cargo clippy -p chat-sync --target wasm32-unknown-unknown --all-targets -- -D warnings

# Browser tests: the wasm client in headless Chromium, Firefox and WebKit.
run_step "Browser tests in Chromium, Firefox and WebKit (tests/wasm.sh)" tests/wasm.sh

# The npm package as an app gets it: packed, installed by name, type-checked, run in Chromium.
run_step "npm package: build, pack, type-check and run a consumer (tests/consumer/run.sh)" tests/consumer/run.sh

# End-to-end tests (npm project in tests/e2e driven by tests/e2e/run.sh), once they exist.
if [[ -f tests/e2e/package.json ]]; then
    run_step "End-to-end tests (tests/e2e/run.sh)" tests/e2e/run.sh
else
    info "(no tests/e2e/package.json yet: end-to-end tests skipped)"
fi
