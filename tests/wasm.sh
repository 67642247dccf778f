#!/usr/bin/env bash
# Browser tests: the wasm client's wasm-bindgen tests in headless Chromium, Firefox and WebKit
# (Safari's engine). Installs what it needs; `scripts/test.sh` runs it.
#   BROWSERS="chromium firefox webkit"   which engines to run (default: all three)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_wasm_target
ensure_wasm_bindgen_cli
ensure_browsers

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
# The runner reads webdriver.json from the working directory for each browser's options.
export WASM_BINDGEN_TEST_TIMEOUT=120

run_in() {
    local browser="$1"
    step "Browser tests in $browser"
    case "$browser" in
        chromium)
            env -u GECKODRIVER -u SAFARIDRIVER CHROMEDRIVER=/usr/bin/chromedriver \
                cargo test -p chat-sync --target wasm32-unknown-unknown
            ;;
        firefox)
            env -u CHROMEDRIVER -u SAFARIDRIVER GECKODRIVER="$(command -v geckodriver)" \
                cargo test -p chat-sync --target wasm32-unknown-unknown
            ;;
        webkit)
            env -u CHROMEDRIVER -u GECKODRIVER SAFARIDRIVER=/usr/bin/WebKitWebDriver \
                xvfb-run -a cargo test -p chat-sync --target wasm32-unknown-unknown
            ;;
        *) die "unknown browser: $browser" ;;
    esac
}

for browser in ${BROWSERS:-chromium firefox webkit}; do
    run_in "$browser"
done
