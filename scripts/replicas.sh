# shellcheck shell=bash
# scripts/replicas.sh — start Slipway replicas, a git remote and a load of API
# requests on loopback, for scripts/chaos and bench/throughput. Source it after
# scripts/lib.sh; don't run it.
#
# Needs: WORK (a scratch directory), BIN (the slipway binary).
# Sets:  DATABASE_URL (exported), REMOTE, PORTS[], PIDS[], DAEMON_PID, TOKEN.

PG_HOST="${SLIPWAY_PG_HOST:-127.0.0.1}"
PG_PORT="${SLIPWAY_PG_PORT:-5432}"
PG_USER="${SLIPWAY_PG_USER:-postgres}"
PG_ADMIN_DB="${SLIPWAY_PG_ADMIN_DB:-test}"
declare -a PIDS=() PORTS=() REPLICA_DBS=()
DAEMON_PID=""
REPLICA_WORKERS="${REPLICA_WORKERS:-4}"
REPLICA_LEASE="${REPLICA_LEASE:-3s}"

pg() { PGCONNECT_TIMEOUT=5 psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -qAtX "$@"; }
pg_admin() { pg -d "$PG_ADMIN_DB" "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  local port="$1" i
  for i in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# use_database sqlite|postgres: a fresh database for the replicas.
use_database() {
  case "$1" in
    sqlite) DATABASE_URL="sqlite://$WORK/shared.db?mode=rwc" ;;
    postgres)
      pg_admin -c 'select 1' >/dev/null 2>&1 || die "no PostgreSQL at $PG_USER@$PG_HOST:$PG_PORT/$PG_ADMIN_DB"
      local db="slipway_replicas_$(date +%s)_$$_${#REPLICA_DBS[@]}"
      pg_admin -c "create database \"$db\"" >/dev/null
      REPLICA_DBS+=("$db")
      DATABASE_URL="postgres://$PG_USER@$PG_HOST:$PG_PORT/$db"
      ;;
    *) die "unknown engine $1" ;;
  esac
  export DATABASE_URL
}

# A bare repository served by git's own daemon, receive-pack on.
start_remote() {
  if [ -z "${GIT_PORT:-}" ]; then
    mkdir -p "$WORK/git"
    git init --quiet --bare --initial-branch main "$WORK/git/platform.git"
    GIT_PORT="$(free_port)"
    REMOTE="git://127.0.0.1:$GIT_PORT/platform.git"
  fi
  # git-daemon itself, not the `git daemon` wrapper that would outlive a kill.
  "$(git --exec-path)/git-daemon" --enable=receive-pack --export-all --reuseaddr \
    --base-path="$WORK/git" --listen=127.0.0.1 --port="$GIT_PORT" </dev/null >/dev/null 2>&1 &
  DAEMON_PID=$!
  wait_port "$GIT_PORT" || die "git daemon did not start"
}

stop_remote() {
  [ -n "$DAEMON_PID" ] || return 0
  kill -CONT "$DAEMON_PID" 2>/dev/null || true
  kill "$DAEMON_PID" 2>/dev/null || true
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
}

# A catalog whose quotas are raised (hundreds of namespaces for one team); the
# rules are the same, so every submit still counts.
prepare_catalog() {
  rm -rf "$WORK/catalog"
  cp -r "$REPO_ROOT/catalog" "$WORK/catalog"
  sed -i -E 's/^(\s*max_count:) [0-9]+/\1 10000000/; s/^(\s*max:) [0-9]+/\1 1000000000/' "$WORK"/catalog/types/*.yaml
  SLIPWAY_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
  export SLIPWAY_SECRET_KEY
}

# start_replica I: replica I on PORTS[I] (picked on first start), its own data dir.
start_replica() {
  local i="$1"
  [ -n "${PORTS[$i]:-}" ] || PORTS[i]="$(free_port)"
  mkdir -p "$WORK/replica-$i"
  SLIPWAY_ADDR="127.0.0.1:${PORTS[$i]}" SLIPWAY_DATA_DIR="$WORK/replica-$i" \
  SLIPWAY_CATALOG="$WORK/catalog" SLIPWAY_DEMO=true SLIPWAY_GITOPS_REMOTE="$REMOTE" \
  SLIPWAY_JOB_LEASE="$REPLICA_LEASE" SLIPWAY_WORKERS="$REPLICA_WORKERS" SLIPWAY_SHUTDOWN_GRACE=5s \
  SLIPWAY_TOKEN_CALLS_PER_MINUTE=0 SLIPWAY_CHECKS_PER_MINUTE=0 \
  SLIPWAY_SITE_ROOT="$WORK/site" RUST_LOG="${RUST_LOG:-warn}" \
    "$BIN" serve >>"$WORK/replica-$i.log" 2>&1 &
  PIDS[i]=$!
}

# start_replicas N: one after the other (the first migrates and seeds the users).
start_replicas() {
  local i
  for i in $(seq 0 $(($1 - 1))); do
    start_replica "$i"
    wait_port "${PORTS[$i]}" || { tail -n 30 "$WORK/replica-$i.log" >&2; die "replica $i did not start"; }
  done
}

stop_replicas() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  PORTS=()
}

# A personal API token of alice's, made through the CLI on the same database.
make_token() {
  TOKEN="$(SLIPWAY_DATA_DIR="$WORK/replica-0" SLIPWAY_CATALOG="$WORK/catalog" SLIPWAY_DEMO=true \
    "$BIN" token create --user alice --scopes request,read --name load 2>>"$WORK/token.log")"
  [ -n "$TOKEN" ] || die "could not make a token: $(cat "$WORK/token.log")"
}

# submit_requests FIRST LAST PARALLEL: auto-approved namespaces c<FIRST>..c<LAST>
# through the REST API, spread over the replicas; with SUBMIT_DATABASE_EVERY=K,
# every K-th is a real database instead (shared-database, named
# <SUBMIT_DATABASE_PREFIX><n>). A replica that was just killed refuses the
# connection: the same Idempotency-Key on the next replica is the same request,
# never a second one.
submit_requests() {
  cat >"$WORK/submit.sh" <<'SUBMIT'
n="$1"; read -r -a ports <<<"$PORTS_LIST"
if [ "${DB_EVERY:-0}" -gt 0 ] && [ $((n % DB_EVERY)) = 0 ]; then
  body="{\"type\":\"shared-database\",\"params\":{\"name\":\"$DB_PREFIX$n\",\"team\":\"payments\",\"environment\":\"dev\",\"connection_limit\":2}}"
else
  body="{\"type\":\"k8s-namespace\",\"params\":{\"name\":\"c$n\",\"team\":\"payments\",\"environment\":\"dev\",\"cpu_limit\":1,\"memory_limit_gi\":1}}"
fi
# A key left "running" by a replica killed mid-call frees itself after a minute.
for try in $(seq 0 300); do
  port="${ports[$(( (n + try) % ${#ports[@]} ))]}"
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -H "Idempotency-Key: load-$n" --data "$body" "http://127.0.0.1:$port/api/v1/requests" || true)"
  case "$code" in 200|201) exit 0 ;; esac
  sleep 0.4
done
echo "request $n not accepted (last status $code)" >&2
exit 1
SUBMIT
  seq "$1" "$2" | PORTS_LIST="${PORTS[*]}" TOKEN="$TOKEN" \
    DB_EVERY="${SUBMIT_DATABASE_EVERY:-0}" DB_PREFIX="${SUBMIT_DATABASE_PREFIX:-d}" \
    xargs -P "$3" -n 1 bash "$WORK/submit.sh"
}

# submitted_databases FIRST LAST: how many of the requests submit_requests makes are databases.
submitted_databases() {
  local every="${SUBMIT_DATABASE_EVERY:-0}"
  [ "$every" -gt 0 ] || { echo 0; return; }
  echo $(( $2 / every - ($1 - 1) / every ))
}

# The interpreter itself, not a version manager's shim: a shim is a few shell
# processes per call, and a poll every 0.2 s took a tenth of the 2 cores that
# the benchmarks measure.
PYTHON_BIN="$(python3 -c 'import sys; print(sys.executable)')"

# db_count SQL: one number from the replicas' database (PostgreSQL or SQLite).
db_count() {
  case "$DATABASE_URL" in
    postgres*) pg -d "${DATABASE_URL##*/}" -c "$1" ;;
    *) "$PYTHON_BIN" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$WORK/shared.db" "$1" ;;
  esac
}

# wait_completed N DEADLINE_SECONDS: until N requests are completed.
wait_completed() {
  local until=$((SECONDS + $2))
  until [ "$(db_count "select count(*) from requests where state = 'completed'")" -ge "$1" ]; do
    [ "$SECONDS" -lt "$until" ] || return 1
    sleep 0.2
  done
}

cleanup_replicas() {
  local pid db
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
  stop_remote
  wait 2>/dev/null || true
  for db in "${REPLICA_DBS[@]:-}"; do
    [ -n "$db" ] && pg_admin -c "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
  done
}
