#!/usr/bin/env bash
# Builds the npm package `chat-sync` into pkg/ (`make pkg`) and packs it into
# target/pkg-tarball/chat-sync-VERSION.tgz. Installs what it needs, only what is missing.
#
#   1. the wasm client, release profile, wasm32-unknown-unknown
#   2. wasm-bindgen --target web            -> pkg/chat_sync.js, chat_sync.d.ts, chat_sync_bg.wasm
#   3. wasm-opt -Oz (without its inlining) on pkg/chat_sync_bg.wasm  (binaryen from npm, pinned in
#      scripts/wasm-opt/: Debian 12's binaryen 108 cannot parse what rustc 1.95 and wasm-bindgen
#      0.2.130 emit), then its imports renamed to short names, in the module and in the JS glue
#      (scripts/minify-names.mjs)
#   4. the hand-written JS of js/ (js/*.js, js/*.d.ts), pkg/package.json and pkg/README.md
#   5. precompressed copies (.br, .gz) of the wasm and the JS, which the demo's server sends, and
#      build-id.js (scripts/build-id.mjs), which the demo's service worker imports
#   6. npm pack, and the raw, gzipped and brotli sizes (docs/benchmarks.md, "Package size")
#
# pkg/ is rebuilt whole each time (built in target/pkg.tmp, then moved into place). Runs at the same
# time in one checkout take turns (a lock on target/build-pkg.lock).
#   CHAT_SYNC_TARBALL_DIR=DIR   where npm pack writes the tarball (default target/pkg-tarball); made
#                               if missing, and only chat-sync-*.tgz files are removed from it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
STAGE="$TARGET_DIR/pkg.tmp"
TARBALL_DIR="${CHAT_SYNC_TARBALL_DIR:-$TARGET_DIR/pkg-tarball}"
WASM_OPT=scripts/wasm-opt/node_modules/.bin/wasm-opt
# The wasm features the module uses, all of them in every browser the package supports. rustc 1.95
# enables these for wasm32-unknown-unknown; the module has multi-value functions (three, from
# rustc) besides, so --enable-multivalue too. (wasm-opt also reads the module's target_features
# section; listing them here keeps the build from depending on it.)
WASM_FEATURES=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
    --enable-mutable-globals --enable-reference-types --enable-multivalue)

# workspace_version: the version in Cargo.toml's [workspace.package].
workspace_version() {
    awk '
        /^\[workspace\.package\]/ { in_section = 1; next }
        /^\[/                     { in_section = 0 }
        in_section && /^version *= *"/ { v = $0; sub(/^version *= *"/, "", v); sub(/".*$/, "", v); print v; exit }
    ' Cargo.toml
}

# size_line FILE: its name, raw, gzipped (gzip -9) and brotli (its FILE.br, level 11) size on one
# line.
size_line() {
    local raw gz br
    raw="$(wc -c <"$1")"
    gz="$(gzip -9c "$1" | wc -c)"
    br="$(wc -c <"$1.br")"
    awk -v name="$(basename "$1")" -v raw="$raw" -v gz="$gz" -v br="$br" \
        'BEGIN { printf "%-20s %8d bytes (%6.1f KB) raw, %7d bytes (%5.1f KB) gzipped, %7d bytes (%5.1f KB) brotli", name, raw, raw / 1024, gz, gz / 1024, br, br / 1024 }'
}

mkdir -p "$TARGET_DIR"
exec 9>"$TARGET_DIR/build-pkg.lock"
if ! flock -n 9; then
    info "another build of the package is running in this checkout; waiting for it"
    flock 9
fi

step "Tools for the package build"
ensure_wasm_target
ensure_wasm_bindgen_cli
ensure_npm_packages scripts/wasm-opt

VERSION="$(workspace_version)"
[[ -n "$VERSION" ]] || { die "no version in Cargo.toml's [workspace.package]"; exit 1; }

step "Building the wasm client (release, wasm32)"
cargo build -p chat-sync --release --target wasm32-unknown-unknown

step "wasm-bindgen --target web"
rm -rf "$STAGE"
mkdir -p "$STAGE"
wasm-bindgen --target web --out-dir "$STAGE" --out-name chat_sync \
    "$TARGET_DIR/wasm32-unknown-unknown/release/chat_sync.wasm"

# Without wasm-opt's own inlining: rustc already inlined what pays, and the copies wasm-opt adds
# shrink the raw module but compress worse (gzipped 191.6 KB without it, 211.9 KB with it, and
# 195.6 KB for the module not optimized at all; docs/benchmarks.md).
step "wasm-opt -Oz --skip-pass=inlining-optimizing ($("$WASM_OPT" --version))"
"$WASM_OPT" -Oz --skip-pass=inlining-optimizing "${WASM_FEATURES[@]}" \
    "$STAGE/chat_sync_bg.wasm" -o "$STAGE/chat_sync_bg.opt.wasm"
mv "$STAGE/chat_sync_bg.opt.wasm" "$STAGE/chat_sync_bg.wasm"
# wasm-bindgen's import names carry a hash each (3.4 KB of the gzipped wasm, 2.6 KB of the glue).
# (wasm-opt's --minify-imports-and-exports-and-modules would rename the exports too, which
# `init()` gives the app.)
node scripts/minify-names.mjs "$STAGE"

step "Hand-written JS (js/), package.json and README.md"
shopt -s nullglob
for file in js/*.js js/*.d.ts; do
    cp "$file" "$STAGE/"
    info "copied $file"
done
shopt -u nullglob
[[ -f "$STAGE/index.js" && -f "$STAGE/index.d.ts" && -f "$STAGE/node.js" ]] || {
    die "js/index.js, js/index.d.ts or js/node.js is missing"
    exit 1
}
[[ -f "$STAGE/sync-refresh.js" ]] || info "warning: no js/sync-refresh.js yet: the package has no ./sync-refresh entry"

cat >"$STAGE/README.md" <<EOF
# chat-sync

Offline-first background sync for web and PWA chat apps: a Rust sync engine in WebAssembly.
A local IndexedDB cache that opens instantly (offline too), messages composed offline shown at
once and delivered exactly once, background sync every 5 minutes and on resume, sync from a
service worker.

## Install

\`\`\`sh
npm install ./chat-sync-$VERSION.tgz   # the tarball \`make pkg\` builds in the chat-sync repository
\`\`\`

## Quickstart

\`\`\`js
import { BackgroundSyncManager } from 'chat-sync'; // initializes the wasm (top-level await)

const sync = await BackgroundSyncManager.create({ serverUrl: 'https://chat.example.com', token });
sync.addEventListener('change', (e) => rerender(e.detail.conversationIds));
await sync.forceSync();
const conversations = await sync.listConversations();
sync.getSyncStatus(); // { isOnline, lastSyncTime, pendingOutbox, phase, … }
\`\`\`

Vite and webpack 5 bundle the wasm file themselves (\`new URL('chat_sync_bg.wasm', import.meta.url)\`).
(Vite 8 builds and serves it as is; if an older Vite dev server answers 404 for the wasm, its
pre-bundling moved the module away from it: add \`optimizeDeps: { exclude: ['chat-sync'] }\`.)
Without a bundler, map \`chat-sync\` to \`node_modules/chat-sync/index.js\` with an import map.

## Entries

- \`chat-sync\`: the class, ready to use; TypeScript types included (\`SyncStatus\`, \`Conversation\`, …).
- \`chat-sync/web\`: the same without the top-level await; call \`init()\` (optionally with the
  wasm's URL) first. Use it in service workers, which do not allow top-level await:
  \`import init, { BackgroundSyncManager } from 'chat-sync/web'; await init();\`, then
  \`BackgroundSyncManager.syncOnce(options)\` in \`sync\` and \`periodicsync\` events.
- \`chat-sync/sync-refresh\`: the \`<sync-refresh>\` custom element (importing it defines it).
- Server-side rendering: under Node both entries import without error (\`chat-sync\` loads the
  wasm from its file), and \`BackgroundSyncManager.create\` rejects with code \`unsupported\`:
  create the manager in the browser.
- \`chat-sync/chat_sync_bg.wasm\`: the WebAssembly module, to serve or preload yourself.

## Links

In the chat-sync repository: \`README.md\` (the JS API, the reference sync server),
\`docs/protocol.md\` (the sync protocol), \`src/js_api/types.d.ts\` (the TypeScript types).

License: MIT OR Apache-2.0.
EOF

# package.json: `files`, `exports` and `sideEffects` list what is there.
CHAT_SYNC_VERSION="$VERSION" node --input-type=module - "$STAGE" <<'EOF'
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const has = (file) => existsSync(join(dir, file));
const exports = {
  // Under Node (server-side rendering) the entry loads the wasm from its file; browser bundlers
  // take `browser` first.
  '.': { types: './index.d.ts', browser: './index.js', node: './node.js', default: './index.js' },
  './web': { types: './chat_sync.d.ts', default: './chat_sync.js' },
};
if (has('sync-refresh.js')) {
  exports['./sync-refresh'] = has('sync-refresh.d.ts')
    ? { types: './sync-refresh.d.ts', default: './sync-refresh.js' }
    : './sync-refresh.js';
}
exports['./chat_sync_bg.wasm'] = './chat_sync_bg.wasm';
exports['./package.json'] = './package.json';

const pkg = {
  name: 'chat-sync',
  version: process.env.CHAT_SYNC_VERSION,
  description: 'Offline-first background sync for web and PWA chat apps: an IndexedDB cache, an outbox delivered exactly once and background sync, in WebAssembly.',
  license: 'MIT OR Apache-2.0',
  keywords: ['chat', 'sync', 'offline-first', 'indexeddb', 'pwa', 'service-worker', 'webassembly'],
  type: 'module',
  main: './index.js',
  types: './index.d.ts',
  exports,
  files: [...readdirSync(dir).filter((f) => f !== 'package.json')].sort(),
  // index.js and node.js instantiate the wasm on import; sync-refresh.js defines <sync-refresh>.
  sideEffects: ['./index.js', './node.js', ...(has('sync-refresh.js') ? ['./sync-refresh.js'] : [])],
};
writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
EOF

# Precompressed copies beside the wasm and the JS, for servers that send such files as they are:
# the reference server does, for the demo. Brotli at its best level is too slow to run per request
# (on the fly the server's brotli made the wasm 175 KB; at level 11 it is about 145 KB). Not in
# the npm package: `files` above was listed before them.
step "Precompressed copies (.br, .gz) of the wasm and the JS"
for file in "$STAGE"/*.wasm "$STAGE"/*.js; do
    gzip -9 -n -k -f "$file"
done
node --input-type=module - "$STAGE"/*.wasm "$STAGE"/*.js <<'JS'
import { readFileSync, writeFileSync } from 'node:fs';
import { brotliCompressSync, constants } from 'node:zlib';

for (const file of process.argv.slice(2)) {
  const data = readFileSync(file);
  const params = { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: data.length };
  writeFileSync(`${file}.br`, brotliCompressSync(data, { params }));
}
JS

# The build id (a hash of the files), which the demo's service worker imports so that a new worker
# installs whenever the package changes; after package.json, so not in the npm package.
info "build id: $(node scripts/build-id.mjs "$STAGE")"

rm -rf pkg
mv "$STAGE" pkg
info "pkg/: $(cd pkg && printf '%s ' *)"

step "npm pack"
# The folder may be the user's own (CHAT_SYNC_TARBALL_DIR): only earlier tarballs of the package
# are removed from it, so it holds just this one.
mkdir -p "$TARBALL_DIR"
rm -f "$TARBALL_DIR"/chat-sync-*.tgz
TARBALL_ABS="$(cd "$TARBALL_DIR" && pwd)"
(cd pkg && npm pack --silent --pack-destination "$TARBALL_ABS" >/dev/null)
TARBALL="$TARBALL_DIR/chat-sync-$VERSION.tgz"
[[ -f "$TARBALL" ]] || { die "npm pack did not write $TARBALL"; exit 1; }
info "$TARBALL ($(wc -c <"$TARBALL") bytes)"

step "Package size (budget: the wasm at most 100 KB gzipped)"
info "$(size_line pkg/chat_sync_bg.wasm)"
info "$(size_line pkg/chat_sync.js)"
info "$(size_line pkg/index.js)"
if [[ -f pkg/sync-refresh.js ]]; then
    info "$(size_line pkg/sync-refresh.js)"
fi
WASM_GZ="$(gzip -9c pkg/chat_sync_bg.wasm | wc -c)"
if ((WASM_GZ > 100 * 1024)); then
    info "over budget: the wasm is $(awk -v b="$WASM_GZ" 'BEGIN { printf "%.1f", b / 1024 }') KB gzipped (docs/benchmarks.md, Package size)"
fi
# Rust's float formatting costs 9.6 KB gzipped and nothing needs it (docs/benchmarks.md, Package
# size, "no float formatting"); the module before wasm-opt still has its function names.
if grep -aq float_to_decimal_common "$TARGET_DIR/wasm32-unknown-unknown/release/chat_sync.wasm"; then
    info "Rust's float formatting is in the wasm again (about 9.6 KB gzipped): a {} of an f64, or a log field that is not a string, integer or bool?"
fi
