#!/usr/bin/env bash
# The npm package as an app gets it: builds and packs it (scripts/build-pkg.sh), installs the
# tarball into this project by its name, type-checks src/main.ts with strict TypeScript (the
# package's own .d.ts files included), then runs the compiled app in headless Chromium against a
# reference server with the demo data that this script starts on 127.0.0.1 (and stops on exit),
# and imports it in Node as server-side rendering does (ssr.mjs).
# `scripts/test.sh` runs it.
#
# The server serves the staged app (target/consumer/www: the compiled page, the installed package
# and an index.html with an import map) on the same origin as the API, under a strict
# Content-Security-Policy. Server log and a screenshot of the page: target/consumer/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="$TARGET_DIR/consumer"
STAGE="$OUT/www"
SERVER_PID=""

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

ensure_chromium
ensure_npm_packages tests/consumer

# The tarball goes to a folder of this test's own, so another build of the package running at the
# same time (tests/e2e builds one too) cannot replace it before it is installed.
CHAT_SYNC_TARBALL_DIR="$OUT/tarball" scripts/build-pkg.sh

step "Installing the packed package into tests/consumer"
shopt -s nullglob
tarballs=("$OUT"/tarball/chat-sync-*.tgz)
shopt -u nullglob
[[ ${#tarballs[@]} -eq 1 ]] || { die "expected one tarball in $OUT/tarball, found ${#tarballs[@]}"; exit 1; }
TARBALL="$(cd "$(dirname "${tarballs[0]}")" && pwd)/$(basename "${tarballs[0]}")"
rm -rf tests/consumer/node_modules/chat-sync
# --no-save: the lockfile pins typescript and playwright-core, not this tarball (it changes
# with every build).
(cd tests/consumer && npm install --no-save --no-audit --no-fund "$TARBALL")
info "installed $(node -p "require('./tests/consumer/node_modules/chat-sync/package.json').version") from $TARBALL"

step "Type-checking and compiling the consumer (tsc, strict)"
rm -rf tests/consumer/dist
(cd tests/consumer && node_modules/.bin/tsc --version && node_modules/.bin/tsc -p .)

step "Running the consumer in headless Chromium against a reference server"
cargo build -p chat-sync-server
mkdir -p "$OUT"
CSP="$(node --conditions=browser tests/consumer/stage.mjs "$STAGE")"
info "staged the app in $STAGE"
: >"$OUT/server.out"
"$TARGET_DIR/debug/chat-sync-server" --db :memory: --seed-demo --listen 127.0.0.1:0 \
    --www "$STAGE" --csp "$CSP" >"$OUT/server.out" 2>"$OUT/server.log" &
SERVER_PID=$!
wait_for_server consumer "$SERVER_PID" "$OUT/server.out" "$OUT/server.log" || exit 1
info "server: $SERVER_URL (pid $SERVER_PID, log: $OUT/server.log)"

OUT_ABS="$(cd "$OUT" && pwd)"
(cd tests/consumer && node run.mjs "$SERVER_URL/" "$OUT_ABS/page.png")

step "Importing the package in Node, as server-side rendering does"
(cd tests/consumer && node ssr.mjs "$SERVER_URL")
