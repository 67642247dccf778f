#!/usr/bin/env bash
# Browser tests: the wasm client's wasm-bindgen tests in headless Chromium, Firefox and WebKit
# (Safari's engine). Installs what it needs; `scripts/test.sh` runs it.
#   BROWSERS="chromium firefox webkit"   which engines to run (default: all three)
#   tests/wasm.sh -- NAME                 only the tests whose name contains NAME (cargo test's
#                                         arguments after `--`)
#
# The transport tests talk to reference servers this script starts on 127.0.0.1 (and stops on
# exit); their URLs reach the test build as compile-time environment variables:
#   CHAT_SYNC_TEST_SERVER         a plain server
#   CHAT_SYNC_TEST_FAULTY_SERVER  answers about half the requests 503 and a fifth 429, Retry-After: 1
#   CHAT_SYNC_TEST_SLOW_SERVER    takes 2 s to answer any API request
#   CHAT_SYNC_TEST_CLOSED_URL     a port nothing listens on (connections are refused)
# Server logs: target/wasm-test-servers/NAME.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_wasm_target
ensure_wasm_bindgen_cli
ensure_browsers

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
SERVER_BIN="$TARGET_DIR/debug/chat-sync-server"
SERVER_LOGS="$TARGET_DIR/wasm-test-servers"
SERVER_PIDS=()

# stop_servers: stop the servers this script started (by their pids) and wait for them.
stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SERVER_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

# start_server NAME ARGS...: start a reference server with the demo data on a free port of
# 127.0.0.1, any origin allowed, plus ARGS; wait for it to listen (`wait_for_server`), which
# sets SERVER_URL to its http://127.0.0.1:PORT.
start_server() {
    local name="$1" pid out log
    shift
    out="$SERVER_LOGS/$name.out"
    log="$SERVER_LOGS/$name.log"
    : >"$out"
    "$SERVER_BIN" --db :memory: --seed-demo --listen 127.0.0.1:0 --cors-origin '*' \
        --www /nonexistent "$@" >"$out" 2>"$log" &
    pid=$!
    SERVER_PIDS+=("$pid")
    wait_for_server "$name" "$pid" "$out" "$log" || return 1
    info "$name server: $SERVER_URL (pid $pid, log: $log)"
}

# closed_port: print a port of 127.0.0.1 that nothing listens on.
closed_port() {
    local port
    for _ in {1..20}; do
        port=$((20000 + RANDOM))
        # A refused connection means nothing listens there.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "found no closed port on 127.0.0.1"
}

step "Starting reference servers for the transport tests"
cargo build -p chat-sync-server
mkdir -p "$SERVER_LOGS"
start_server plain
export CHAT_SYNC_TEST_SERVER="$SERVER_URL"
start_server faulty --fault-503 0.3 --fault-429 0.1 --fault-retry-after 1 --fault-seed 7
export CHAT_SYNC_TEST_FAULTY_SERVER="$SERVER_URL"
start_server slow --fault-latency-ms 2000
export CHAT_SYNC_TEST_SLOW_SERVER="$SERVER_URL"
CHAT_SYNC_TEST_CLOSED_URL="http://127.0.0.1:$(closed_port)"
export CHAT_SYNC_TEST_CLOSED_URL
info "closed port: $CHAT_SYNC_TEST_CLOSED_URL"

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
# The runner reads webdriver.json from the working directory for each browser's options.
# The runner's limit is for a whole test binary, not one test: the client's 130-odd tests take
# about 2 minutes (each bounds its own waits), more on a loaded machine. 120 s cut a run short
# on its last test.
export WASM_BINDGEN_TEST_TIMEOUT=600

run_in() {
    local browser="$1"
    step "Browser tests in $browser"
    case "$browser" in
        chromium)
            env -u GECKODRIVER -u SAFARIDRIVER CHROMEDRIVER=/usr/bin/chromedriver \
                cargo test -p chat-sync --target wasm32-unknown-unknown "${CARGO_TEST_ARGS[@]}"
            ;;
        firefox)
            env -u CHROMEDRIVER -u SAFARIDRIVER GECKODRIVER="$(command -v geckodriver)" \
                cargo test -p chat-sync --target wasm32-unknown-unknown "${CARGO_TEST_ARGS[@]}"
            ;;
        webkit)
            env -u CHROMEDRIVER -u GECKODRIVER SAFARIDRIVER=/usr/bin/WebKitWebDriver \
                xvfb-run -a cargo test -p chat-sync --target wasm32-unknown-unknown "${CARGO_TEST_ARGS[@]}"
            ;;
        *) die "unknown browser: $browser" ;;
    esac
}

CARGO_TEST_ARGS=("$@")
for browser in ${BROWSERS:-chromium firefox webkit}; do
    run_in "$browser"
done
