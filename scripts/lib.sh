# shellcheck shell=bash
# scripts/lib.sh — shared helpers for Slipway's scripts. Source it; don't run it.
#
# Sets:
#   REPO_ROOT         absolute path of the repository (parent of scripts/)
#   CARGO_TARGET_DIR  build cache OUTSIDE the clone (default $HOME/.cache/slipway-target)
#   SLIPWAY_TOOLS_DIR non-cargo tools (default $HOME/.cache/slipway-tools)
#   PATH              $HOME/.cargo/bin first, so our pinned tools win
# Provides: site_build, log, warn, die, banner, run_stage NAME CMD..., as_root CMD...

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/slipway-target}"
export SLIPWAY_TOOLS_DIR="${SLIPWAY_TOOLS_DIR:-$HOME/.cache/slipway-tools}"
case ":$PATH:" in
  *":$HOME/.cargo/bin:"*) ;;
  *) export PATH="$HOME/.cargo/bin:$PATH" ;;
esac
# Never let Playwright (or its postinstall) download browsers.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

# The release site build. --split puts every `#[lazy]` function (the parameter
# checks with their JSON Schema engine) into its own wasm chunk, loaded only where
# it is used; without it the lazy imports would not link.
site_build() { cargo leptos build --release --split "$@"; }

log()  { printf '[slipway] %s\n' "$*" >&2; }
warn() { printf '[slipway] WARNING: %s\n' "$*" >&2; }
die()  { printf '[slipway] ERROR: %s\n' "$*" >&2; exit 1; }

banner() {
  printf '\n==================================================================\n' >&2
  printf '== %s\n' "$*" >&2
  printf '==================================================================\n' >&2
}

# run_stage NAME CMD...: banner, run CMD with errexit in force, record timing.
# Call it as a plain command (not inside if/&&/||, which would switch errexit
# off for the whole stage). On failure the script exits through its EXIT trap,
# which should call stage_failed to print the FAILED banner and timings.
STAGE_TIMINGS=()
CURRENT_STAGE=""
STAGE_START=0
run_stage() {
  CURRENT_STAGE="$1"; shift
  banner "STAGE: $CURRENT_STAGE"
  STAGE_START=$SECONDS
  "$@"
  local dur=$((SECONDS - STAGE_START))
  STAGE_TIMINGS+=("$(printf '%-34s %5ds  ok' "$CURRENT_STAGE" "$dur")")
  log "stage '$CURRENT_STAGE' passed in ${dur}s"
  CURRENT_STAGE=""
}
# stage_failed RC: report the stage that was running when the script died.
stage_failed() {
  local rc="$1"
  [ -n "$CURRENT_STAGE" ] || return 0
  local dur=$((SECONDS - STAGE_START))
  STAGE_TIMINGS+=("$(printf '%-34s %5ds  FAILED (exit %s)' "$CURRENT_STAGE" "$dur" "$rc")")
  banner "FAILED: $CURRENT_STAGE (exit $rc, after ${dur}s)"
  print_timings
}
print_timings() {
  [ ${#STAGE_TIMINGS[@]} -gt 0 ] || return 0
  printf '\n-- stage timings --\n' >&2
  printf '%s\n' "${STAGE_TIMINGS[@]}" >&2
}

# as_root CMD...: run directly when root, else through sudo when available.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root to run '$*' and sudo is not available; please run it yourself"
  fi
}

# cargo-leptos passes these to wasm-opt on release builds. Its default enables
# only bulk-memory and nontrapping-float-to-int, but rustc >= 1.87 (LLVM 20)
# emits more features by default (reference-types, multivalue, ...), which an
# un-told wasm-opt rejects. Respect an explicit setting (env or Cargo.toml).
if [ -z "${LEPTOS_WASM_OPT_FEATURES:-}" ] && ! grep -q '^wasm-opt-features' "$REPO_ROOT/Cargo.toml" 2>/dev/null; then
  export LEPTOS_WASM_OPT_FEATURES="-Oz,--enable-bulk-memory,--enable-bulk-memory-opt,--enable-nontrapping-float-to-int,--enable-sign-ext,--enable-mutable-globals,--enable-reference-types,--enable-multivalue,--enable-call-indirect-overlong"
fi
