#!/usr/bin/env bash
# end2end/start-server.sh — started by Playwright's webServer (playwright.config.ts).
# Runs the RELEASE binary ($SLIPWAY_BIN, default $CARGO_TARGET_DIR/release/slipway,
# built by `cargo leptos build --release --split`) in demo mode
# on 127.0.0.1:${SLIPWAY_E2E_PORT:-3100} with a fresh temporary data directory,
# which is removed when the server exits, and single sign-on through a real OpenID
# Connect provider (./oidc-provider.mjs, npm `oidc-provider`) on
# 127.0.0.1:${SLIPWAY_E2E_OIDC_PORT:-port+1000}. Run from end2end/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

target="${CARGO_TARGET_DIR:-$HOME/.cache/slipway-target}"
bin="${SLIPWAY_BIN:-$target/release/slipway}"
port="${SLIPWAY_E2E_PORT:-3100}"
oidc_port="${SLIPWAY_E2E_OIDC_PORT:-$((port + 1000))}"
oidc_secret="slipway-e2e-secret"

[ -x "$bin" ] || { echo "start-server.sh: $bin not found; run 'cargo leptos build --release --split' first" >&2; exit 1; }
[ -d ../target/site/pkg ] || echo "start-server.sh: warning: ../target/site/pkg missing (no hydration assets)" >&2

tmp="$(mktemp -d "${TMPDIR:-/tmp}/slipway-e2e.XXXXXX")"
echo "start-server.sh: data dir $tmp" >&2

child=""
provider=""
cleanup() {
  local pid
  for pid in "$child" "$provider"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

OIDC_PORT="$oidc_port" SLIPWAY_URL="http://127.0.0.1:$port" OIDC_CLIENT_SECRET="$oidc_secret" \
  node ./oidc-provider.mjs &
provider=$!
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$oidc_port") 2>/dev/null && break
  sleep 0.2
done

# With a PostgreSQL server to create databases on, the shared-database type runs
# for real (scripts/test sets SLIPWAY_E2E_POSTGRES when PostgreSQL answers).
if [ -n "${SLIPWAY_E2E_POSTGRES:-}" ]; then
  export SLIPWAY_COMMAND_ALLOW=psql
  export SLIPWAY_POSTGRES_SERVERS="shared=$SLIPWAY_E2E_POSTGRES"
fi

SLIPWAY_OIDC_CLIENT_SECRET="$oidc_secret" "$bin" serve --demo \
  --addr "127.0.0.1:$port" \
  --data-dir "$tmp" \
  --site-root ../target/site \
  --catalog ../catalog \
  --public-url "http://127.0.0.1:$port" \
  --oidc-issuer "http://127.0.0.1:$oidc_port" \
  --oidc-client-id slipway-e2e \
  --oidc-teams-as-named true \
  --oidc-name "Slipway test IdP" &
child=$!
wait "$child"
