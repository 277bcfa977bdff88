# shellcheck shell=bash
# scripts/lib.sh — shared helpers for Slipway's scripts. Source it; don't run it.
#
# Sets:
#   REPO_ROOT         absolute path of the repository (parent of scripts/)
#   CARGO_TARGET_DIR  build cache OUTSIDE the clone (default $HOME/.cache/slipway-target)
#   SLIPWAY_TOOLS_DIR non-cargo tools (default $HOME/.cache/slipway-tools)
#   PATH              $HOME/.cargo/bin first, so our pinned tools win
# Provides: log, warn, die, banner, run_stage NAME CMD..., as_root CMD...

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

log()  { printf '[slipway] %s\n' "$*" >&2; }
warn() { printf '[slipway] WARNING: %s\n' "$*" >&2; }
die()  { printf '[slipway] ERROR: %s\n' "$*" >&2; exit 1; }

banner() {
  printf '\n==================================================================\n' >&2
  printf '== %s\n' "$*" >&2
  printf '==================================================================\n' >&2
}

# run_stage NAME CMD...: banner, run, print timing; on failure print a clear
# FAILED banner and exit with the command's status.
run_stage() {
  local name="$1"; shift
  banner "STAGE: $name"
  local start=$SECONDS rc=0
  "$@" || rc=$?
  local dur=$((SECONDS - start))
  STAGE_TIMINGS+=("$(printf '%-34s %4ds  %s' "$name" "$dur" "$([ $rc -eq 0 ] && echo ok || echo FAILED)")")
  if [ $rc -ne 0 ]; then
    banner "FAILED: $name (exit $rc, after ${dur}s)"
    print_timings
    exit "$rc"
  fi
  log "stage '$name' passed in ${dur}s"
}
STAGE_TIMINGS=()
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
