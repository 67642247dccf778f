#!/usr/bin/env bash
# End-to-end and browser tests of the npm package in headless Chromium, driven by playwright-core
# (scripts/test.sh runs this once tests/e2e/package.json exists).
#
#   tests/e2e/run.sh                          every tests/e2e/*.test.mjs
#   tests/e2e/run.sh tests/e2e/x.test.mjs     only those files
#   CHROMIUM=/path/to/chromium                another Chromium build (default /usr/bin/chromium)
#   E2E_TEST_TIMEOUT_MS=120000                per-test timeout
#   E2E_SKIP_BUILD=1                          skip building pkg/ and the server binary
#
# To add a build step (a wasm package, a server binary) do it below, before the tests run; test
# helpers live in tests/e2e/support/ (launchBrowser, serveStatic).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

step "Chromium and npm packages for the end-to-end tests"
ensure_chromium
ensure_npm_packages tests/e2e

# The demo PWA loads the npm package through the symlink www/pkg -> ../pkg; the tests start the
# reference server binary (support/server.mjs), and demo-command.test.mjs runs `make demo`, which
# runs the release build. E2E_SKIP_BUILD=1 skips these builds.
if [[ "${E2E_SKIP_BUILD:-}" != 1 ]]; then
    step "The npm package (pkg/) and the reference server for the end-to-end tests"
    scripts/build-pkg.sh
    cargo build -p chat-sync-server
    cargo build --release -p chat-sync-server
fi

if [[ $# -gt 0 ]]; then
    files=("$@")
else
    shopt -s nullglob
    files=(tests/e2e/*.test.mjs)
    shopt -u nullglob
fi
[[ ${#files[@]} -gt 0 ]] || { die "no tests/e2e/*.test.mjs to run"; exit 1; }

step "End-to-end tests (node --test): ${files[*]}"
# One file at a time: each launches its own browser, and the machine is small.
node --test --test-concurrency=1 --test-timeout="${E2E_TEST_TIMEOUT_MS:-120000}" "${files[@]}"
