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
# Markdown rows on stdout; progress on stderr.
#
#   bench/astra-bench.sh
#   USERS=10000 BIG=100000 DUE=10000 BENCH_SECS=3 bench/astra-bench.sh   # smoke
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

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
MAX_CALLS_PER_SEC=100000
ASTRA_EXTRA_ENV=("ATV_ASTRA__SCHEDULER_INTERVAL_SECS=1")
astra_drill_setup astra-bench 1
PUB="${REPLICA_PUB[0]}"
INT="${REPLICA_INT[0]}"
PID() { echo "${REPLICA_PIDS[0]}"; }

# wrk_json LABEL URL [USERS [nowarmup]]: one measured run after a 2 s
# warm-up (unless nowarmup); prints a markdown row (label, req/s, p50, p99,
# max ms, non-2xx, errors).
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
  local req dur p50 p99 max non2xx errs
  req=$("$PROBE" get - /requests <<<"$line")
  dur=$("$PROBE" get - /duration_us <<<"$line")
  p50=$("$PROBE" get - /p50_us <<<"$line")
  p99=$("$PROBE" get - /p99_us <<<"$line")
  max=$("$PROBE" get - /max_us <<<"$line")
  non2xx=$("$PROBE" get - /non_2xx <<<"$line")
  errs=$(($("$PROBE" get - /connect_errors <<<"$line") + $("$PROBE" get - /read_errors <<<"$line") \
    + $("$PROBE" get - /timeouts <<<"$line")))
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" \
    "$(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')" \
    "$(awk -v v="$p50" 'BEGIN { printf "%.2f", v / 1000 }')" \
    "$(awk -v v="$p99" 'BEGIN { printf "%.2f", v / 1000 }')" \
    "$(awk -v v="$max" 'BEGIN { printf "%.2f", v / 1000 }')" "$non2xx" "$errs"
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

echo "| measure | value |"
echo "|---|---|"
startup_median
echo "| start-up to /readyz, 0 users (median of 3) | $STARTUP_MS ms |"
echo "| RSS idle, 0 users | $(rss_mib) MiB |"

t=$(now_ms)
astra_probe seed-direct --fake "$ASTRA_URL" --store-url "$PG_URL" --users "$USERS" >&2
log "seeded $USERS users in $(($(now_ms) - t)) ms"
echo
echo "| GET, $CONNS connections, ${BENCH_SECS} s | req/s | p50 ms | p99 ms | max ms | non-2xx | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
warm_pass
wrk_json "/astra/users/{u}/token, $USERS users, cache warm (every user read once just before)" \
  "http://127.0.0.1:$INT/astra/users/u0/token" "$USERS"
wrk_json "/astrada-sdk-token (cached, for scale)" "http://127.0.0.1:$PUB/astrada-sdk-token"
restart_astra_replica "$UP" 1 "$REDIRECT"
wrk_json "/astra/users/{u}/token, $USERS users, cache cold (replica just restarted)" \
  "http://127.0.0.1:$INT/astra/users/u0/token" "$USERS" nowarmup
ASTRA_EXTRA_ENV+=("ATV_ASTRA__CACHE_CAPACITY=0")
cold=1
restart_astra_replica "$UP" 1 "$REDIRECT" 2>/dev/null || cold=0
unset 'ASTRA_EXTRA_ENV[-1]'
if [ "$cold" = 1 ]; then
  wrk_json "/astra/users/{u}/token, $USERS users, cache off (CACHE_CAPACITY=0)" \
    "http://127.0.0.1:$INT/astra/users/u0/token" "$USERS"
  restart_astra_replica "$UP" 1 "$REDIRECT"
else
  echo "| cache off (CACHE_CAPACITY=0) | not measured: this build refuses the setting | | | | | |"
  start_astra_replica "$UP" 1 "$REDIRECT"
  replica_ready "$PUB"
fi

t=$(now_ms)
astra_probe seed-direct --fake "$ASTRA_URL" --store-url "$PG_URL" --users $((BIG - USERS)) \
  --first "$USERS" >&2
log "seeded $((BIG - USERS)) more users in $(($(now_ms) - t)) ms"
echo
echo "| measure, $BIG users stored | value |"
echo "|---|---|"
startup_median
echo "| start-up to /readyz (median of 3) | $STARTUP_MS ms |"
sleep 2
echo "| RSS idle | $(rss_mib) MiB |"
( sleep $((BENCH_SECS / 2 + 2)); rss_mib >"$BENCH_TMP/rss-load" ) &
sampler=$!
row=$(wrk_json "/astra/users/{u}/token, $BIG users" "http://127.0.0.1:$INT/astra/users/u0/token" "$BIG")
wait "$sampler"
echo "| RSS under load (mid-run) / peak | $(cat "$BENCH_TMP/rss-load") MiB / $(awk -v k="$(hwm_kb "$(PID)")" 'BEGIN { printf "%.1f", k / 1024 }') MiB |"
echo
echo "| GET, $CONNS connections, ${BENCH_SECS} s | req/s | p50 ms | p99 ms | max ms | non-2xx | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
echo "$row"

echo
astra_probe catch-up --name astra-scheduler-pass --fake "$ASTRA_URL" --store-url "$PG_URL" \
  --targets "$TARGETS" --users "$DUE" --prefix d --cap 100000 \
  --refresh-issued-ago-secs $((8 * 86400)) --next-refresh-in-secs -60 --settle-secs 11 || true
