# Helpers for the per-user Astra drills (bench/drills/astra-*.sh): a
# throw-away PostgreSQL cluster, the fake Astra, vendor replicas sharing the
# cluster, and the naive peer. Sourced after bench/lib.sh, not run.
# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it
#
# Like lib.sh: everything on 127.0.0.1, free ports, every process stopped on
# exit. The cluster is stopped by the EXIT trap, and by a watchdog if this
# shell dies without running it. Verdicts are `atv-bench astra …`'s.

ASTRA_ID=bench-astra
ASTRA_SECRET=bench-astra-secret-not-real

# BENCH_PROFILE=debug runs target/debug (CI: the test step has built it).
if [ "${BENCH_PROFILE:-release}" = debug ]; then
  BIN="${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-$BENCH_ROOT/target}}/debug"
  VENDOR="$BIN/astrada-token-vendor"
  PROBE="$BIN/atv-bench"
fi

PG_DIR=""
PG_BIN=""
PG_PORT=""
PG_URL=""
PG_AS=()
[ "$(id -u)" != 0 ] || PG_AS=(runuser -u postgres --)

astra_cleanup() {
  cleanup
  pg_stop
}
trap astra_cleanup EXIT
trap 'exit 130' INT TERM

# The newest /usr/lib/postgresql/*/bin (or $ATV_TEST_PG_BIN); empty if none.
pg_bin_dir() {
  if [ -n "${ATV_TEST_PG_BIN:-}" ]; then
    echo "$ATV_TEST_PG_BIN"
    return 0
  fi
  local dir found=""
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && found="$dir"
  done
  # The glob sorts 10 before 9; versions in use here are all two-digit.
  echo "$found"
}

# pg_start: a cluster on a free port with database `atv`; sets PG_URL.
# Returns 1 when no PostgreSQL is installed (scripts/test-deps/postgres.sh).
pg_start() {
  PG_BIN=$(pg_bin_dir)
  [ -n "$PG_BIN" ] || return 1
  PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/atv-pg.XXXXXX")
  [ "${#PG_AS[@]}" -eq 0 ] || chown postgres:postgres "$PG_DIR"
  PG_PORT=$(free_port)
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync -E UTF8 \
    >"$BENCH_TMP/initdb.log" 2>&1
  # Stops the cluster if this shell dies without its EXIT trap (SIGKILL).
  setsid -f sh -c "while kill -0 $$ 2>/dev/null; do sleep 1; done; \
    ${PG_AS[*]} '$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m immediate stop >/dev/null 2>&1; \
    rm -rf '$PG_DIR'" >/dev/null 2>&1
  pg_up
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres atv
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/atv"
}

# pg_up / pg_down: starts the cluster (again, on the same port), or stops it
# with `-m fast` (sessions ended, as in a failover); both wait until done.
# The cluster runs at the replicas' CPU priority (PRIO): at a lower one, a
# busy replica starves its own database and pooled reads time out.
pg_up() {
  "${PRIO[@]}" "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null
}
pg_down() {
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null
}

pg_stop() {
  [ -n "$PG_DIR" ] || return 0
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
}

# psql_atv SQL: runs one statement on database `atv`.
psql_atv() {
  "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d atv -v ON_ERROR_STOP=1 -qAt -c "$1"
}

# start_fake_astra PORT LATENCY_MS REDIRECT_URI: sets ASTRA_URL.
start_fake_astra() {
  start_bg "fake-astra-$1" "${ON_LOAD_CPU[@]}" "$BIN/fake_astra" --addr "127.0.0.1:$1" \
    --client-id "$ASTRA_ID" --client-secret "$ASTRA_SECRET" \
    --redirect-uri "$3" --latency-ms "$2"
  ASTRA_URL="http://127.0.0.1:$1/"
  wait_http_ok "${ASTRA_URL}_control"
}

# fake_astra_latency MS: the fake Astra's added latency from now on.
fake_astra_latency() {
  curl -fsS --max-time 2 -H 'content-type: application/json' \
    -d "{\"latency_ms\":$1}" "${ASTRA_URL}_control" >/dev/null
}

# The replicas' token keyring, also what `atv-bench astra seed-direct` seals with
# (it reads ATV_ASTRA__ENCRYPTION_KEYS, see astra_probe).
ASTRA_KEYS="k1:$(head -c 32 /dev/urandom | base64)"
# Extra settings for every replica (after the defaults below, so they win).
ASTRA_EXTRA_ENV=()
REPLICA_PUB=()
REPLICA_INT=()
REPLICA_PIDS=()

# start_astra_replica UPSTREAM_PORT R REDIRECT_URI: starts replica R (1-based)
# on its ports (free ones the first time), HOSTNAME=replicaR so that its
# lease holder names start with that. Does not wait for readiness.
start_astra_replica() {
  local up="$1" r="$2" redirect="$3" i=$(($2 - 1))
  [ -n "${REPLICA_PUB[$i]:-}" ] || { REPLICA_PUB[i]=$(free_port); REPLICA_INT[i]=$(free_port); }
  VENDOR_EXTRA_ENV=(
    "ATV_ASTRA__ENABLED=true"
    "ATV_ASTRA__API_URL=$ASTRA_URL"
    "ATV_ASTRA__AUTHORIZE_URL=$ASTRA_URL"
    "ATV_ASTRA__CLIENT_ID=$ASTRA_ID"
    "ATV_ASTRA__CLIENT_SECRET=$ASTRA_SECRET"
    "ATV_ASTRA__REDIRECT_URI=$redirect"
    "ATV_ASTRA__STORE_URL=$PG_URL"
    "ATV_ASTRA__STORE_MAX_CONNECTIONS=${STORE_MAX_CONNECTIONS:-16}"
    "ATV_ASTRA__STORE_TIMEOUT_MS=${STORE_TIMEOUT_MS:-1000}"
    "ATV_ASTRA__ENCRYPTION_KEYS=$ASTRA_KEYS"
    "ATV_ASTRA__ACTIVE_KEY_ID=k1"
    "ATV_ASTRA__MAX_CALLS_PER_SEC=${MAX_CALLS_PER_SEC:-100000}"
    "ATV_LOG__FILTER=${VENDOR_LOG_FILTER:-warn}"
    "${ASTRA_EXTRA_ENV[@]}"
    "HOSTNAME=replica$r"
  )
  start_vendor "$up" "${REPLICA_PUB[$i]}" "${REPLICA_INT[$i]}"
  REPLICA_PIDS[i]=$VENDOR_PID
}

# start_astra_replicas UPSTREAM_PORT COUNT REDIRECT_URI: vendor replicas
# sharing PG_URL; sets TARGETS (their internal base URLs, comma-separated).
# The first one runs the migrations before the others start.
start_astra_replicas() {
  local up="$1" count="$2" redirect="$3" r pub
  TARGETS=""
  for r in $(seq 1 "$count"); do
    start_astra_replica "$up" "$r" "$redirect"
    if [ "$r" = 1 ]; then replica_ready "${REPLICA_PUB[0]}"; fi
    TARGETS="$TARGETS${TARGETS:+,}http://127.0.0.1:${REPLICA_INT[$((r - 1))]}/"
  done
  REPLICA_PORTS=("${REPLICA_PUB[@]}")
  for pub in "${REPLICA_PUB[@]}"; do replica_ready "$pub"; done
}
REPLICA_PORTS=()

# restart_astra_replica UPSTREAM_PORT R REDIRECT_URI: SIGTERM, wait for the
# exit, start again on the same ports, wait for /readyz. Sets RESTART_RC
# (the exit code), RESTART_EXIT_MS and RESTART_READY_MS (since the SIGTERM),
# and RESTART_STARTUP_MS (from exec to ready).
# Not in a subshell: the replica must stay this shell's child.
restart_astra_replica() {
  local i=$(($2 - 1)) t
  t=$(now_ms)
  RESTART_RC=0
  kill -TERM "${REPLICA_PIDS[$i]}" 2>/dev/null || true
  wait "${REPLICA_PIDS[$i]}" || RESTART_RC=$?
  RESTART_EXIT_MS=$(($(now_ms) - t))
  start_astra_replica "$1" "$2" "$3"
  replica_ready "${REPLICA_PUB[$i]}" || return 1
  RESTART_READY_MS=$(($(now_ms) - t))
  RESTART_STARTUP_MS=$(($(now_ms) - VENDOR_T0))
}

# fake_astra_control JSON: one POST /_control (fault, latency_ms, reset_peak, seed).
fake_astra_control() {
  curl -fsS --max-time 60 -H 'content-type: application/json' -d "$1" "${ASTRA_URL}_control" >/dev/null
}

# astra_probe ARGS...: `atv-bench astra ARGS` on the load CPU, with the keyring.
astra_probe() {
  ATV_ASTRA__ENCRYPTION_KEYS="$ASTRA_KEYS" ATV_ASTRA__ACTIVE_KEY_ID=k1 \
    "${ON_LOAD_CPU[@]}" "$PROBE" astra "$@"
}

# leases_held_by HOLDER_PREFIX: unexpired leases whose holder starts so.
leases_held_by() {
  psql_atv "SELECT count(*) FROM astra_users WHERE lease_holder LIKE '$1-%' \
    AND lease_expires_at > CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT)"
}

# astra_drill_setup DRILL REPLICAS: builds if needed, starts PostgreSQL (or
# prints SKIP and exits), the fake upstream (UP), the fake Astra (REDIRECT,
# ASTRA_URL; latency 0) and REPLICAS replicas (TARGETS).
astra_drill_setup() {
  if [ "${BENCH_PROFILE:-release}" = release ]; then build_release; fi
  astra_need_binaries "$1"
  raise_nofile 65536
  if ! pg_start; then
    echo "SKIP $1: no PostgreSQL (run scripts/test-deps/postgres.sh)"
    exit 0
  fi
  UP=$(free_port)
  start_fake "$UP" 300 0
  local ast
  ast=$(free_port)
  REDIRECT="http://127.0.0.1:$ast/bench/callback"
  start_fake_astra "$ast" 0 "$REDIRECT"
  if [ -n "${FAKE_ASTRA_START:-}" ]; then fake_astra_control "$FAKE_ASTRA_START"; fi
  local t
  t=$(now_ms)
  start_astra_replicas "$UP" "$2" "$REDIRECT"
  log "postgres on $PG_PORT; $2 replicas ready in $(($(now_ms) - t)) ms: $TARGETS"
}

# astra_need_binaries DRILL: FAIL line and exit unless everything is built.
astra_need_binaries() {
  local exe
  for exe in "$VENDOR" "$PROBE" "$BIN/fake_astra" "$BIN/fake_upstream"; do
    if [ ! -x "$exe" ]; then
      echo "FAIL $1: $exe missing (build first)"
      exit 1
    fi
  done
}

# replica_ready PUBLIC_PORT: waits for /readyz; shows the replica's log if it never comes.
replica_ready() {
  wait_http_ok "http://127.0.0.1:$1/readyz" 30000 || {
    tail -n 20 "$BENCH_TMP/vendor-$1.log" >&2
    return 1
  }
}

# start_naive_peers COUNT REDIRECT_URI: naive_astra_peer processes sharing
# PG_URL; sets NAIVE_TARGETS. The first one creates its table.
start_naive_peers() {
  local count="$1" redirect="$2" r port
  NAIVE_TARGETS=""
  for r in $(seq 1 "$count"); do
    port=$(free_port)
    start_bg "naive-$port" "${ON_SERVER_CPU[@]}" "$BIN/naive_astra_peer" --addr "127.0.0.1:$port" \
      --store-url "$PG_URL" --astra-url "$ASTRA_URL" --client-id "$ASTRA_ID" \
      --client-secret "$ASTRA_SECRET" --redirect-uri "$redirect"
    wait_http_ok "http://127.0.0.1:$port/readyz" 30000
    NAIVE_TARGETS="$NAIVE_TARGETS${NAIVE_TARGETS:+,}http://127.0.0.1:$port/"
  done
}
