#!/usr/bin/env bash
# Performance suite: throughput and latency of the cached SDK token against a
# bare actix-web ceiling and a naive no-cache peer, cold start, memory and
# start-up, and the refresh soak. Records its measurements in
# $BENCH_RESULTS_DIR (default bench/results/: bench.jsonl, machine.json), from
# which `atv-bench report` writes bench/RESULTS.md and its charts.
#
#   atv-bench run bench                       # full run (~15 min with the 10-min soak), then the report
#   atv-bench run bench --short               # BENCH_SECS=3 SOAK_SECS=0 COLD_N=2000
#
# Knobs: BENCH_SECS (per wrk run, default 10), BENCH_CONNS ("1 64 256"),
# BENCH_WORKERS (server workers, default 1: one core for the servers, one for
# wrk), SOAK_SECS (600), SOAK_RATE (500 req/s), COLD_N (10000),
# BENCH_NODE (auto|off: the Node.js node:http peer row, when node is installed),
# BENCH_AUTH (auto|on|off: the caller-auth-on row; auto = measured when the
# service starts with it, else noted in the results), BENCH_BEFORE_BIN and
# BENCH_BEFORE_REV (an older build's every-layer-on row, for before/after),
# BENCH_NO_BUILD=1 (reuse target/release), SOAK_JSON (an
# earlier bench/soak.sh output to use instead of soaking again).
source "$(dirname "$0")/lib.sh"

BENCH_SECS="${BENCH_SECS:-10}"
BENCH_CONNS="${BENCH_CONNS:-1 64 256}"
SOAK_SECS="${SOAK_SECS:-600}"
COLD_N="${COLD_N:-10000}"
BENCH_AUTH="${BENCH_AUTH:-auto}"
UPSTREAM_LATENCY_MS="${UPSTREAM_LATENCY_MS:-80}"
BENCH_ORIGIN="https://app.bench.invalid"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/bench.jsonl"
: >"$OUT"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
build_release
raise_nofile 30000

# record KIND JSON [key=string | key:=json ...]: one result line for the report.
record() {
  local kind="$1" json="$2"
  shift 2
  "$PROBE" merge "$json" kind="$kind" "$@" >>"$OUT"
}

# wrk_run LABEL CONNS URL: one measured wrk run (after a short warm-up).
wrk_run() {
  local label="$1" conns="$2" url="$3" line
  "${ON_LOAD_CPU[@]}" wrk -t1 -c"$conns" -d2s -s "$BENCH_ROOT/bench/wrk-report.lua" "$url" >/dev/null 2>&1 || true
  line=$("${ON_LOAD_CPU[@]}" wrk -t1 -c"$conns" -d"${BENCH_SECS}s" --timeout 10s --latency \
    -s "$BENCH_ROOT/bench/wrk-report.lua" "$url" | sed -n 's/^WRKJSON //p')
  log "$label c=$conns: $line"
  record wrk "$line" target="$label" conns:="$conns"
}

# ---------------------------------------------------------------- machine
"$PROBE" machine "$BENCH_ROOT" >"$RESULTS_DIR/machine.json"

# ---------------------------------------------------------------- servers
start_stack 300 "$UPSTREAM_LATENCY_MS"
VENDOR_OFF_PID=$VENDOR_PID
SDK_URL="http://127.0.0.1:$PUB/astrada-sdk-token"
BODY_BYTES=$(curl -fsS "$SDK_URL" | wc -c)
CEIL=$(free_port)
start_bg ceiling "${ON_SERVER_CPU[@]}" "$BIN/ceiling" --addr "127.0.0.1:$CEIL" \
  --workers "${BENCH_WORKERS:-1}" --body-bytes "$BODY_BYTES"
CEIL_PID=$LAST_PID
wait_http_ok "http://127.0.0.1:$CEIL/"
NAIVE=$(free_port)
start_bg naive "${ON_SERVER_CPU[@]}" "$BIN/naive_peer" --addr "127.0.0.1:$NAIVE" \
  --workers "${BENCH_WORKERS:-1}" --token-url "http://127.0.0.1:$UP/oauth/token" \
  --client "$SDK_ID:$SDK_SECRET"
wait_http_ok "http://127.0.0.1:$NAIVE/"
# The peer users would pick instead: Node's node:http with a module-level
# token cache and the same response headers, on the same core.
NODE_URL=""
if [ "${BENCH_NODE:-auto}" != off ] && command -v node >/dev/null; then
  NODE_PORT=$(free_port)
  start_bg node-peer "${ON_SERVER_CPU[@]}" node "$BENCH_ROOT/bench/node-peer.mjs" --port "$NODE_PORT" \
    --token-url "http://127.0.0.1:$UP/oauth/token" --client "$SDK_ID:$SDK_SECRET" --origin "$BENCH_ORIGIN"
  wait_http_ok "http://127.0.0.1:$NODE_PORT/" && NODE_URL="http://127.0.0.1:$NODE_PORT/"
fi

# Caller auth on: a second vendor with [caller_auth] mode = "jwt" and a valid
# session token on every request (see bench/auth.sh for the key names).
AUTH_URL=""
AUTH_NOTE=""
if [ "$BENCH_AUTH" != off ]; then
  source "$BENCH_ROOT/bench/auth.sh"
  auth_setup
  APUB=$(free_port); AINT=$(free_port)
  # Every production layer on: caller auth, an allowed Origin (sent by wrk),
  # the rate limit on but far above what one wrk client sends.
  VENDOR_EXTRA_ENV=("${AUTH_ENV[@]}" "ATV_CORS__ALLOWED_ORIGINS=[\"$BENCH_ORIGIN\"]"
    "ATV_RATE_LIMIT__PER_CALLER_PER_MINUTE=60000000" "ATV_RATE_LIMIT__BURST=1000000")
  start_vendor "$UP" "$APUB" "$AINT"
  VENDOR_EXTRA_ENV=()
  VENDOR_AUTH_PID=$VENDOR_PID
  if wait_http_ok "http://127.0.0.1:$APUB/readyz" 5000 &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $AUTH_HEADER" "http://127.0.0.1:$APUB/astrada-sdk-token")" = 200 ] &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APUB/astrada-sdk-token")" = 401 ]; then
    AUTH_URL="http://127.0.0.1:$APUB/astrada-sdk-token"
  else
    AUTH_NOTE="the service did not start with caller auth on, or did not answer 200 with / 401 without a session token: $(tail -c 400 "$BENCH_TMP/vendor-$APUB.log" | tr '\n' ' ')"
    stop_pid "$VENDOR_AUTH_PID"
  fi
  [ -z "$AUTH_NOTE" ] || log "caller auth on: not measured: $AUTH_NOTE"
  [ "$BENCH_AUTH" != on ] || [ -n "$AUTH_URL" ] || { echo "BENCH_AUTH=on but: $AUTH_NOTE" >&2; exit 1; }
fi
record auth '{}' measured:="$([ -n "$AUTH_URL" ] && echo true || echo false)" note="$AUTH_NOTE"

# An older build of the vendor, every layer on like vendor-auth, in the same
# run: the before/after rows. BENCH_BEFORE_BIN is its binary (e.g. built from
# BENCH_BEFORE_REV in a worktree); it must know the settings above.
BEFORE_URL=""
if [ -n "${BENCH_BEFORE_BIN:-}" ] && [ -n "$AUTH_URL" ]; then
  BPUB=$(free_port); BINT=$(free_port)
  VENDOR_EXTRA_ENV=("${AUTH_ENV[@]}" "ATV_CORS__ALLOWED_ORIGINS=[\"$BENCH_ORIGIN\"]"
    "ATV_RATE_LIMIT__PER_CALLER_PER_MINUTE=60000000" "ATV_RATE_LIMIT__BURST=1000000")
  AFTER_BIN=$VENDOR
  VENDOR=$BENCH_BEFORE_BIN
  start_vendor "$UP" "$BPUB" "$BINT"
  VENDOR=$AFTER_BIN
  VENDOR_EXTRA_ENV=()
  VENDOR_BEFORE_PID=$VENDOR_PID
  if wait_http_ok "http://127.0.0.1:$BPUB/readyz" 5000; then
    BEFORE_URL="http://127.0.0.1:$BPUB/astrada-sdk-token"
  else
    log "before build: not measured: $(tail -c 400 "$BENCH_TMP/vendor-$BPUB.log" | tr '\n' ' ')"
    stop_pid "$VENDOR_BEFORE_PID"
  fi
fi
record before '{}' rev="${BENCH_BEFORE_REV:-}" measured:="$([ -n "$BEFORE_URL" ] && echo true || echo false)"

# ---------------------------------------------------------------- memory at idle
record memory_idle '{}' rss_kb:="$(rss_kb "$VENDOR_OFF_PID")" ceiling_rss_kb:="$(rss_kb "$CEIL_PID")"

# ---------------------------------------------------------------- throughput
for c in $BENCH_CONNS; do
  wrk_run ceiling "$c" "http://127.0.0.1:$CEIL/"
  wrk_run vendor "$c" "$SDK_URL"
  if [ -n "$AUTH_URL" ]; then
    BENCH_AUTH_HEADER="$AUTH_HEADER" BENCH_ORIGIN="$BENCH_ORIGIN" wrk_run vendor-auth "$c" "$AUTH_URL"
  fi
  if [ -n "$BEFORE_URL" ]; then
    BENCH_AUTH_HEADER="$AUTH_HEADER" BENCH_ORIGIN="$BENCH_ORIGIN" wrk_run vendor-before "$c" "$BEFORE_URL"
  fi
  [ -z "$NODE_URL" ] || BENCH_ORIGIN="$BENCH_ORIGIN" wrk_run node "$c" "$NODE_URL"
  before=$(fake_issued "$UP" "$SDK_ID")
  wrk_run naive "$c" "http://127.0.0.1:$NAIVE/"
  after=$(fake_issued "$UP" "$SDK_ID")
  record naive_exchanges '{}' conns:="$c" exchanges:="$((after - before))"
done
record memory_load '{}' rss_kb:="$(rss_kb "$VENDOR_OFF_PID")" peak_kb:="$(hwm_kb "$VENDOR_OFF_PID")"
record vendor_exchanges '{}' sdk:="$(metric "$INT" atv_token_exchanges_total 'set="sdk",outcome="ok"')" \
  misses:="$(metric "$INT" atv_token_cache_lookups_total 'set="sdk",result="miss"')" \
  hits:="$(metric "$INT" atv_token_cache_lookups_total 'set="sdk",result="hit"')"
stop_pid "$VENDOR_OFF_PID"
[ -z "$AUTH_URL" ] || stop_pid "$VENDOR_AUTH_PID"
[ -z "$BEFORE_URL" ] || stop_pid "$VENDOR_BEFORE_PID"

# ---------------------------------------------------------------- start-up, size
STATS=()
for _ in 1 2 3 4 5; do
  PUB=$(free_port); INT=$(free_port)
  start_vendor "$UP" "$PUB" "$INT"
  wait_http_ok "http://127.0.0.1:$PUB/healthz" 10000
  listening=$(($(now_ms) - VENDOR_T0))
  wait_http_ok "http://127.0.0.1:$PUB/readyz" 10000
  ready=$(($(now_ms) - VENDOR_T0))
  STATS+=("[$listening, $ready]")
  stop_pid "$VENDOR_PID"
done
record startup '{}' runs:="[$(IFS=,; echo "${STATS[*]}")]" upstream_latency_ms:="$UPSTREAM_LATENCY_MS" \
  binary_bytes:="$(stat -c %s "$VENDOR")"

# ---------------------------------------------------------------- cold start
cold_start() {
  local latency="$1" up pub int out
  up=$(free_port); pub=$(free_port); int=$(free_port)
  start_fake "$up" 300 "$latency"
  local fake=$FAKE_PID
  start_vendor "$up" "$pub" "$int"
  out=$("${ON_LOAD_CPU[@]}" "$PROBE" cold-start --url "http://127.0.0.1:$pub/astrada-sdk-token" \
    --addr "127.0.0.1:$pub" -n "$COLD_N" --t0-unix-ms "$VENDOR_T0")
  log "cold start (upstream ${latency} ms): $out"
  record cold_start "$out" upstream_latency_ms:="$latency" \
    sdk_exchanges:="$(fake_issued "$up" "$SDK_ID")" api_exchanges:="$(fake_issued "$up" "$API_ID")" \
    upstream_requests:="$(fake_stat "$up" /requests)" \
    misses:="$(metric "$int" atv_token_cache_lookups_total 'set="sdk",result="miss"')" \
    coalesced:="$(metric "$int" atv_token_coalesced_waiters_total 'set="sdk"')"
  stop_pid "$VENDOR_PID"
  stop_pid "$fake"
}
cold_start "$UPSTREAM_LATENCY_MS"
cold_start 1000

# ---------------------------------------------------------------- soak
# SOAK_JSON=FILE reuses the last line of an earlier `bench/soak.sh` run.
if [ -n "${SOAK_JSON:-}" ]; then
  record soak "$(tail -1 "$SOAK_JSON")"
elif [ "$SOAK_SECS" -gt 0 ]; then
  soak=$("$BENCH_ROOT/bench/soak.sh" | tail -1)
  record soak "$soak"
fi
log "recorded $OUT (atv-bench report renders it)"
