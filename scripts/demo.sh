#!/usr/bin/env bash
# The one command to run the demo: builds the npm package (pkg/, which www/pkg links to) and
# the sync server, and serves www/ with seeded demo users. Extra arguments are passed on to
# chat-sync-server.
#   CHAT_SYNC_DB      SQLite file        (default: chat.sqlite)
#   CHAT_SYNC_LISTEN  listen address     (default: 127.0.0.1:8080)
#   CARGO_TARGET_DIR  cargo's build folder, as cargo reads it (default: target)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DB="${CHAT_SYNC_DB:-chat.sqlite}"
LISTEN="${CHAT_SYNC_LISTEN:-127.0.0.1:8080}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

scripts/build-pkg.sh

step "Building chat-sync-server (release)"
cargo build --release -p chat-sync-server

step "Starting the demo"
info "The demo will be at http://$LISTEN (database: $DB)"
info "Demo tokens: demo-alice, demo-bob, demo-carol, demo-dave, demo-erin"
exec "$TARGET_DIR/release/chat-sync-server" --db "$DB" --seed-demo --listen "$LISTEN" --www www "$@"
