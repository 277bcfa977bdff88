#!/usr/bin/env bash
# end2end/start-server.sh — started by Playwright's webServer (playwright.config.ts).
# Runs the RELEASE binary ($SLIPWAY_BIN, default $CARGO_TARGET_DIR/release/slipway,
# built by `cargo leptos build --release --split`) in demo mode
# on 127.0.0.1:${SLIPWAY_E2E_PORT:-3100} with a fresh temporary data directory,
# which is removed when the server exits. Run from end2end/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

target="${CARGO_TARGET_DIR:-$HOME/.cache/slipway-target}"
bin="${SLIPWAY_BIN:-$target/release/slipway}"
port="${SLIPWAY_E2E_PORT:-3100}"

[ -x "$bin" ] || { echo "start-server.sh: $bin not found; run 'cargo leptos build --release --split' first" >&2; exit 1; }
[ -d ../target/site/pkg ] || echo "start-server.sh: warning: ../target/site/pkg missing (no hydration assets)" >&2

tmp="$(mktemp -d "${TMPDIR:-/tmp}/slipway-e2e.XXXXXX")"
echo "start-server.sh: data dir $tmp" >&2

child=""
cleanup() {
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

"$bin" serve --demo \
  --addr "127.0.0.1:$port" \
  --data-dir "$tmp" \
  --site-root ../target/site \
  --catalog ../catalog &
child=$!
wait "$child"
