#!/usr/bin/env bash
# Benchmarks of the per-user Astra part (release build, one run; compare
# rows within the run). One replica (1 worker, pinned like bench/run.sh),
# one PostgreSQL cluster, the fake Astra; wrk on the other core.
#
# 1. start-up to /readyz with 0 users (median of 3);
# 2. GET /astra/users/{u}/token over USERS (100,000) users at CONNS (64)
#    connections, random user per request: read-through cache warm (after a
#    pass reading every user once), cold (the replica just restarted), off
#    (ATV_ASTRA__CACHE_CAPACITY=0), and the cached /astrada-sdk-token beside
#    it for scale;
# 3. BIG (1,000,000) users stored: start-up to /readyz (median of 3), RSS
#    idle, RSS while wrk spreads over all of them;
# 4. one scheduler pass over DUE (100,000) due users (cap effectively off,
#    fake latency 0): time, and pg_stat_database deltas.
# Records its rows in $BENCH_RESULTS_DIR/astra-bench.jsonl (default
# bench/results/), which `atv-bench report` renders; the scheduler pass's
# PASS/FAIL line on stdout; progress on stderr.
#
#   atv-bench run astra-bench
#   atv-bench run astra-bench --short    # USERS=10000 BIG=100000 DUE=10000 BENCH_SECS=3
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=bench/astra.sh
source "$(dirname "$0")/astra.sh"

USERS="${USERS:-100000}"
BIG="${BIG:-1000000}"
DUE="${DUE:-100000}"
CONNS="${CONNS:-64}"
BENCH_SECS="${BENCH_SECS:-10}"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/astra-bench.jsonl"
: >"$OUT"

# measure LABEL VALUE / wrk_row LABEL JSON: one result line for the report.
measure() { "$PROBE" merge '{}' kind=measure label="$1" value="$2" >>"$OUT"; }

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
MAX_CALLS_PER_SEC=100000
ASTRA_EXTRA_ENV=("ATV_ASTRA__SCHEDULER_INTERVAL_SECS=1")
astra_drill_setup astra-bench 1
PUB="${REPLICA_PUB[0]}"
INT="${REPLICA_INT[0]}"
PID() { echo "${REPLICA_PIDS[0]}"; }

# wrk_json LABEL URL [USERS [nowarmup]]: one measured run after a 2 s
# warm-up (unless nowarmup), recorded as a `wrk` row.
wrk_json() {
  local label="$1" url="$2" n="${3:-0}" script="$BENCH_ROOT/bench/wrk-report.lua" line
  [ "$n" = 0 ] || script="$BENCH_ROOT/bench/astra-users.lua"
  export ASTRA_USERS="$n" WRK_REPORT="$BENCH_ROOT/bench/wrk-report.lua"
  if [ "${4:-}" != nowarmup ]; then
    "${ON_LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d2s -s "$script" "$url" >/dev/null 2>&1 || true
  fi
  line=$("${ON_LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${BENCH_SECS}s" --timeout 10s --latency \
    -s "$script" "$url" | sed -n 's/^WRKJSON //p')
  log "$label: $line"
  "$PROBE" merge "$line" kind=wrk label="$label" conns:="$CONNS" >>"$OUT"
}

# warm_pass: every one of USERS users' token requested once, in order, so
# the replica's cache holds them all (astra.cache_capacity >= USERS).
warm_pass() {
  local t
  t=$(now_ms)
  ASTRA_USERS="$USERS" ASTRA_SEQUENTIAL=1 WRK_REPORT="$BENCH_ROOT/bench/wrk-report.lua" \
    "${ON_LOAD_CPU[@]}" wrk -t1 -c16 -d600s -s "$BENCH_ROOT/bench/astra-users.lua" \
    "http://127.0.0.1:$INT/astra/users/u0/token" >/dev/null 2>&1 &
  local wrk_pid=$!
  until [ "$(astra_cache_count miss)" -ge "$USERS" ]; do sleep 0.2; done
  kill "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" 2>/dev/null || true
  log "warm pass: $USERS users read in $(($(now_ms) - t)) ms"
}

# astra_cache_count OUTCOME: the replica's atv_astra_token_cache_total{outcome}.
astra_cache_count() {
  curl -fsS "http://127.0.0.1:$INT/metrics" |
    awk -v o="atv_astra_token_cache_total{outcome=\"$1\"}" '$1 == o { printf "%d", $2; f = 1 } END { if (!f) print 0 }'
}

# startup_median: restarts the replica 3 times; sets STARTUP_MS, the median
# time from exec to /readyz. Not in a subshell: the replica must stay ours.
startup_median() {
  local times=() i
  for i in 1 2 3; do
    restart_astra_replica "$UP" 1 "$REDIRECT"
    times+=("$RESTART_STARTUP_MS")
  done
  STARTUP_MS=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
}
rss_mib() { awk -v k="$(rss_kb "$(PID)")" 'BEGIN { printf "%.1f", k / 1024 }'; }

startup_median
measure "start-up to /readyz, 0 users (median of 3)" "$STARTUP_MS ms"
measure "RSS idle, 0 users" "$(rss_mib) MiB"

t=$(now_ms)
astra_probe seed-direct --fake "$ASTRA_URL" --store-url "$PG_URL" --users "$USERS" >&2
log "seeded $USERS users in $(($(now_ms) - t)) ms"
warm_pass
wrk_json "$USERS users, cache warm" "http://127.0.0.1:$INT/astra/users/u0/token" "$USERS"
wrk_json "/astrada-sdk-token (cached, for scale)" "http://127.0.0.1:$PUB/astrada-sdk-token"
restart_astra_replica "$UP" 1 "$REDIRECT"
wrk_json "$USERS users, cache cold (just restarted)" \
  "http://127.0.0.1:$INT/astra/users/u0/token" "$USERS" nowarmup
ASTRA_EXTRA_ENV+=("ATV_ASTRA__CACHE_CAPACITY=0")
cold=1
restart_astra_replica "$UP" 1 "$REDIRECT" 2>/dev/null || cold=0
unset 'ASTRA_EXTRA_ENV[-1]'
if [ "$cold" = 1 ]; then
  wrk_json "$USERS users, cache off" "http://127.0.0.1:$INT/astra/users/u0/token" "$USERS"
  restart_astra_replica "$UP" 1 "$REDIRECT"
else
  measure "cache off (CACHE_CAPACITY=0)" "not measured: this build refuses the setting"
  start_astra_replica "$UP" 1 "$REDIRECT"
  replica_ready "$PUB"
fi

t=$(now_ms)
astra_probe seed-direct --fake "$ASTRA_URL" --store-url "$PG_URL" --users $((BIG - USERS)) \
  --first "$USERS" >&2
log "seeded $((BIG - USERS)) more users in $(($(now_ms) - t)) ms"
startup_median
measure "start-up to /readyz, $BIG users stored (median of 3)" "$STARTUP_MS ms"
sleep 2
measure "RSS idle, $BIG users stored" "$(rss_mib) MiB"
( sleep $((BENCH_SECS / 2 + 2)); rss_mib >"$BENCH_TMP/rss-load" ) &
sampler=$!
wrk_json "$BIG users (mostly cache misses)" "http://127.0.0.1:$INT/astra/users/u0/token" "$BIG"
wait "$sampler"
measure "RSS under load over $BIG users (mid-run / peak)" \
  "$(cat "$BENCH_TMP/rss-load") / $(awk -v k="$(hwm_kb "$(PID)")" 'BEGIN { printf "%.1f", k / 1024 }') MiB"

astra_probe catch-up --name astra-scheduler-pass --fake "$ASTRA_URL" --store-url "$PG_URL" \
  --targets "$TARGETS" --users "$DUE" --prefix d --cap 100000 \
  --refresh-issued-ago-secs $((8 * 86400)) --next-refresh-in-secs -60 --settle-secs 11 || true
