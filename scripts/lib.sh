# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it, do not execute it:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Every ensure_* function is idempotent: it checks first, installs only what is
# missing, and says what it does. All of them are safe under `set -euo pipefail`.

# Repository root: the parent of the directory holding this file.
CHAT_SYNC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# step "message": print a clearly visible step header.
step() {
    printf '\n==> %s\n' "$*"
}

# info "message": an indented detail line under the current step.
info() {
    printf '    %s\n' "$*"
}

# die "message": print an error to stderr and return 1. Callers write
# `|| { die "..."; return 1; }` so the failure also propagates when the caller
# runs in a context where set -e is suspended (if, ||, &&).
die() {
    printf 'error: %s\n' "$*" >&2
    return 1
}

# Print the command prefix needed to run something as root: nothing when we
# already are root, "sudo" when it exists, otherwise nothing (the command will
# then fail with its own permission error).
_as_root_prefix() {
    if [[ "$(id -u)" -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
        printf 'sudo'
    fi
}

# ensure_wasm_target: the wasm32-unknown-unknown target for the toolchain pinned
# in rust-toolchain.toml (rustup is run from the repo root so it picks that
# toolchain up).
ensure_wasm_target() {
    local target=wasm32-unknown-unknown installed
    command -v rustup >/dev/null 2>&1 || { die "rustup not found; install it from https://rustup.rs"; return 1; }
    # Capture first instead of piping into `grep -q`: an early-exiting grep
    # can SIGPIPE rustup and trip pipefail.
    installed="$(cd "$CHAT_SYNC_ROOT" && rustup target list --installed)" || return 1
    if grep -qx "$target" <<<"$installed"; then
        info "rust target $target already installed"
        return 0
    fi
    info "installing rust target $target (toolchain from rust-toolchain.toml)"
    (cd "$CHAT_SYNC_ROOT" && rustup target add "$target")
}

# _apt_installed pkg: true when dpkg reports the package as fully installed
# (a removed package that left config files behind does not count).
_apt_installed() {
    local status
    status="$(dpkg -s "$1" 2>/dev/null | sed -n 's/^Status: //p')" || return 1
    [[ "$status" == "install ok installed" ]]
}

# ensure_apt_packages pkg...: apt-get install the packages that are missing.
# `apt-get update` runs once, and only if something is missing.
ensure_apt_packages() {
    local pkg missing=() sudo_cmd
    for pkg in "$@"; do
        if _apt_installed "$pkg"; then
            info "apt package $pkg already installed"
        else
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || { die "apt-get not found; please install: ${missing[*]}"; return 1; }
    sudo_cmd="$(_as_root_prefix)"
    info "installing apt packages: ${missing[*]}"
    # `env` so DEBIAN_FRONTEND survives sudo.
    ${sudo_cmd:+"$sudo_cmd"} env DEBIAN_FRONTEND=noninteractive apt-get update || return 1
    ${sudo_cmd:+"$sudo_cmd"} env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}

# ensure_chromium: headless browser + driver for browser tests
# (/usr/bin/chromium and /usr/bin/chromedriver).
ensure_chromium() {
    ensure_apt_packages chromium chromium-driver
}

# ensure_browsers: the three engines the browser tests run in, and their
# WebDriver servers: Chromium, Firefox (geckodriver) and WebKit (WebKitWebDriver,
# run under Xvfb).
ensure_browsers() {
    ensure_apt_packages chromium chromium-driver firefox-esr webkit2gtk-driver xvfb || return 1
    ensure_geckodriver
}

# The geckodriver `cargo install` builds: pinned, so that a later release (which may need a newer
# Rust than rust-toolchain.toml's) cannot break a fresh install. Raise it on purpose.
GECKODRIVER_VERSION=0.37.1

# ensure_geckodriver: geckodriver $GECKODRIVER_VERSION on PATH, built with cargo install when the
# one on PATH is missing or another version.
ensure_geckodriver() {
    local want="$GECKODRIVER_VERSION" have
    have="$(_tool_version geckodriver)"
    if [[ "$have" == "$want" ]]; then
        info "geckodriver $want already installed"
        return 0
    fi
    if [[ -n "$have" ]]; then
        info "geckodriver on PATH is $have, not $want"
    fi
    info "installing geckodriver $want with cargo install (takes about 2 minutes)"
    # --locked: its dependencies as its release locked them, so that no later release of one
    # needs a newer Rust either (checked: 0.37.1 builds so with the toolchain of
    # rust-toolchain.toml).
    (cd "$CHAT_SYNC_ROOT" && cargo install geckodriver --version "$want" --locked) || return 1
    _check_cargo_installed geckodriver "$want"
}

# _tool_version NAME: the version NAME on PATH reports (the second word of the first line of
# `NAME --version`, e.g. "geckodriver 0.37.1"); nothing when NAME is not on PATH.
_tool_version() {
    hash -r
    command -v "$1" >/dev/null 2>&1 || return 0
    { "$1" --version 2>/dev/null || true; } | awk 'NR == 1 { print $2 }'
}

# _check_cargo_installed NAME VERSION: after `cargo install`, check that the NAME found on PATH
# is VERSION. Fails, saying which file it is, when NAME is not on PATH or another NAME comes
# before cargo's.
_check_cargo_installed() {
    local name="$1" want="$2" have found cargo_bin
    cargo_bin="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
    have="$(_tool_version "$name")"
    [[ "$have" == "$want" ]] && return 0
    found="$(command -v "$name" 2>/dev/null)" || {
        die "cargo installed $name $want into $cargo_bin, which is not on PATH: add it to PATH"
        return 1
    }
    die "$found on PATH is $name ${have:-of an unknown version}, not the $want cargo installed into $cargo_bin: remove $found, or put $cargo_bin before its directory on PATH"
}

# cargo_lock_version NAME [LOCKFILE]: print the version(s) of package NAME
# recorded in LOCKFILE (default: the repo's Cargo.lock), one per line; prints
# nothing when the package is absent. Always returns 0 if the file is readable.
cargo_lock_version() {
    local name="$1" lockfile="${2:-$CHAT_SYNC_ROOT/Cargo.lock}"
    [[ -r "$lockfile" ]] || { die "cannot read $lockfile"; return 1; }
    awk -v want="$name" '
        /^\[\[package\]\]/ { in_pkg = 1; pkg = ""; next }
        /^\[/              { in_pkg = 0; next }
        in_pkg && /^name = "/ {
            pkg = $0; sub(/^name = "/, "", pkg); sub(/".*$/, "", pkg); next
        }
        in_pkg && /^version = "/ && pkg == want {
            v = $0; sub(/^version = "/, "", v); sub(/".*$/, "", v); print v
        }
    ' "$lockfile"
}

# ensure_wasm_bindgen_cli [LOCKFILE]: the wasm-bindgen CLI must match the
# wasm-bindgen crate version in Cargo.lock exactly, or its output will not work.
# Does nothing when Cargo.lock has no wasm-bindgen.
ensure_wasm_bindgen_cli() {
    local lockfile="${1:-$CHAT_SYNC_ROOT/Cargo.lock}" versions want have runner
    versions="$(cargo_lock_version wasm-bindgen "$lockfile")" || return 1
    if [[ -z "$versions" ]]; then
        info "wasm-bindgen-cli not needed yet (no wasm-bindgen in $(basename "$lockfile"))"
        return 0
    fi
    want="$(head -n 1 <<<"$versions")"
    if [[ "$(wc -l <<<"$versions")" -gt 1 ]]; then
        info "warning: several wasm-bindgen versions in Cargo.lock ($(tr '\n' ' ' <<<"$versions")); using $want"
    fi
    # Each prints its name and version ("wasm-bindgen 0.2.100"); tests/wasm.sh runs the runner.
    have="$(_tool_version wasm-bindgen)"
    runner="$(_tool_version wasm-bindgen-test-runner)"
    if [[ "$have" == "$want" && "$runner" == "$want" ]]; then
        info "wasm-bindgen-cli $want already installed"
        return 0
    fi
    if [[ -n "$have$runner" ]]; then
        info "on PATH: wasm-bindgen ${have:-missing}, wasm-bindgen-test-runner ${runner:-missing}; Cargo.lock wants $want"
    fi
    info "installing wasm-bindgen-cli $want with cargo install (takes about 2.5 minutes)"
    # No --locked: with it the install fails on these machines.
    (cd "$CHAT_SYNC_ROOT" && cargo install wasm-bindgen-cli --version "$want") || return 1
    _check_cargo_installed wasm-bindgen "$want" || return 1
    _check_cargo_installed wasm-bindgen-test-runner "$want"
}

# The oldest Node.js the scripts work with: tests/e2e/run.sh runs `node --test --test-timeout`
# (Node.js 20.11 on), and playwright-core needs Node.js 20.
NODE_MIN_VERSION=20.11.0

# _version_at_least HAVE MIN: true when version HAVE (e.g. 20.20.2) is MIN or newer.
_version_at_least() {
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

# ensure_node: node and npm on PATH, node $NODE_MIN_VERSION or newer. Installs Debian's nodejs
# and npm when either is missing; fails, saying what is needed, when the node on PATH is older
# (Debian 12's own nodejs is 18).
ensure_node() {
    local have found
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        ensure_apt_packages nodejs npm || return 1
        hash -r
    fi
    found="$(command -v node)" || { die "node is not on PATH"; return 1; }
    have="$(node --version 2>/dev/null)" || have=""
    have="${have#v}"
    if [[ -n "$have" ]] && _version_at_least "$have" "$NODE_MIN_VERSION"; then
        return 0
    fi
    die "$found is Node.js ${have:-of an unknown version}; chat-sync's scripts need Node.js $NODE_MIN_VERSION or newer (playwright-core needs 20, tests/e2e/run.sh's node --test --test-timeout 20.11), with npm. Debian 12's nodejs package is 18: install a newer Node.js and put it first on PATH"
}

# ensure_npm_packages DIR: `npm ci` in DIR when DIR/package-lock.json exists and the packages in
# DIR/node_modules were not installed from this very lockfile. A successful install ends by
# writing the lockfile's sha256 into DIR/node_modules/.chat-sync-installed; an install that
# stopped half way has none, so the next run installs again.
ensure_npm_packages() {
    local dir="$1" stamp want
    if [[ ! -f "$dir/package-lock.json" ]]; then
        info "no $dir/package-lock.json; nothing to install"
        return 0
    fi
    ensure_node || return 1
    stamp="$dir/node_modules/.chat-sync-installed"
    want="$(sha256sum "$dir/package-lock.json")" || return 1
    want="${want%% *}"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
        info "npm packages in $dir up to date"
        return 0
    fi
    info "running npm ci in $dir"
    rm -f "$stamp"
    (cd "$dir" && npm ci) || return 1
    # npm ci makes no node_modules when there are no dependencies at all.
    mkdir -p "$dir/node_modules"
    printf '%s\n' "$want" >"$stamp"
}

# wait_for_server NAME PID OUT LOG: wait (at most 30 s) until the reference server PID prints
# its first stdout line, `listening on http://127.0.0.1:PORT`, into OUT, and set SERVER_URL to
# that URL. When it exits or takes too long, print the end of its LOG and return 1.
wait_for_server() {
    local name="$1" pid="$2" out="$3" log="$4" deadline=$((SECONDS + 30))
    until [[ "$(wc -l <"$out")" -ge 1 ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2
            die "the $name server exited before listening (log: $log)"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$log" >&2
            die "the $name server did not come up within 30 s (log: $log)"
            return 1
        fi
        sleep 0.2
    done
    SERVER_URL="$(head -n 1 "$out")"
    SERVER_URL="${SERVER_URL#listening on }"
    [[ "$SERVER_URL" == http://127.0.0.1:* ]] || {
        die "unexpected first line from the $name server: $(head -n 1 "$out")"
        return 1
    }
}
