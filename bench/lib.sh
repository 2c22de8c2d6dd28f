# Shared helpers for bench/run.sh and bench/drills/*.sh. Sourced, not run;
# `atv-bench run NAME` (bench/runner/) is how the scripts are run and judged.
# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it
# Everything listens on 127.0.0.1 on free ports; every process started here is
# remembered by PID and stopped on exit (never by name). Scripts only start
# and stop processes: measuring, reading JSON and metrics, the cache's timing
# rules and every verdict are the bench program's (`atv-bench`, bench/runner/).

set -euo pipefail

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-$BENCH_ROOT/target}}/release"
VENDOR="$BIN/astrada-token-vendor"
PROBE="$BIN/atv-bench"
BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/atv-bench.XXXXXX")"
STARTED_PIDS=()

# Two cores: the servers on one, the load generator on the other, so that
# they do not steal each other's CPU. Ratios are compared within one run.
# On a shared machine (other builds running) the measured processes also get
# a higher CPU priority (BENCH_NICE, default -10 as root, else 0), so that
# the numbers describe this code rather than the neighbours' compile jobs.
if [ -z "${BENCH_NICE:-}" ]; then
  BENCH_NICE=0
  [ "$(id -u)" != 0 ] || BENCH_NICE=-10
fi
PRIO=(nice -n "$BENCH_NICE")
if [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU="${SERVER_CPU:-1}"
  LOAD_CPU="${LOAD_CPU:-0}"
  ON_SERVER_CPU=("${PRIO[@]}" taskset -c "$SERVER_CPU")
  ON_LOAD_CPU=("${PRIO[@]}" taskset -c "$LOAD_CPU")
else
  ON_SERVER_CPU=("${PRIO[@]}")
  ON_LOAD_CPU=("${PRIO[@]}")
fi

API_ID=bench-api
API_SECRET=bench-api-secret-not-real
SDK_ID=bench-sdk
SDK_SECRET=bench-sdk-secret-not-real

cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  # BENCH_KEEP_LOGS=DIR keeps every process's log for a post-mortem.
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then
    mkdir -p "$BENCH_KEEP_LOGS" && cp "$BENCH_TMP"/*.log "$BENCH_KEEP_LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$BENCH_TMP"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now_ms() { date +%s%3N; }

# Raises the open-file limit for the cold-start burst (10,000 sockets).
raise_nofile() {
  local want="$1"
  if [ "$(ulimit -n)" -lt "$want" ]; then
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  fi
}

# The one build every script needs: the service, and atv-bench with the
# fakes, the ceiling and the naive peers (bench/runner/src/bin/; not a
# default member, so `cargo test` builds none of them).
build_release() {
  if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    log "building release binaries (cargo build --release -p astrada-token-vendor -p atv-bench)"
    (cd "$BENCH_ROOT" && cargo build --locked --release --bins \
      -p astrada-token-vendor -p atv-bench >&2)
  fi
  [ -x "$VENDOR" ] || { echo "missing $VENDOR: build first" >&2; exit 2; }
}

free_port() { "$PROBE" free-port; }

# Polls URL until it answers 200 (bounded: $2 ms, default 10 s).
wait_http_ok() {
  local url="$1" limit_ms="${2:-10000}" start
  start=$(now_ms)
  until curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; do
    if [ $(($(now_ms) - start)) -gt "$limit_ms" ]; then
      echo "timed out waiting for $url" >&2
      return 1
    fi
    sleep 0.01
  done
}

# start_bg NAME CMD...: starts a background process, logs to $BENCH_TMP/NAME.log.
# Sets LAST_PID.
start_bg() {
  local name="$1"
  shift
  "$@" >"$BENCH_TMP/$name.log" 2>&1 &
  LAST_PID=$!
  STARTED_PIDS+=("$LAST_PID")
}

# stop_pid PID [SIGNAL]: stops one process we started and waits for it.
stop_pid() {
  kill "-${2:-TERM}" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# start_fake PORT LIFETIME_SECS LATENCY_MS [extra args]: sets FAKE_PID.
start_fake() {
  local port="$1" lifetime="$2" latency="$3"
  shift 3
  start_bg "fake-$port" "${ON_LOAD_CPU[@]}" "$BIN/fake_upstream" --addr "127.0.0.1:$port" \
    --client "$API_ID:$API_SECRET" --client "$SDK_ID:$SDK_SECRET" \
    --lifetime-secs "$lifetime" --latency-ms "$latency" "$@"
  FAKE_PID=$LAST_PID
  wait_http_ok "http://127.0.0.1:$port/_control"
}

# The fake's counters (GET) and mode switch (POST) on PORT.
fake_control() { echo "http://127.0.0.1:$1/_control"; }
fake_mode() {
  curl -fsS --max-time 2 -H 'content-type: application/json' -d "$2" "$(fake_control "$1")" >/dev/null
}
# fake_stat PORT POINTER: one of its counters, e.g. /requests (0 when absent).
fake_stat() { "$PROBE" get "$(fake_control "$1")" "$2" --default 0; }
# Tokens the fake issued to one client id.
fake_issued() { fake_stat "$1" "/issued_by_client/$2"; }

# vendor_env UPSTREAM_PORT PUBLIC_PORT INTERNAL_PORT: the service's settings
# for a bench run, into the array VENDOR_ENV (caller-auth and source tweaks
# come from VENDOR_EXTRA_ENV; values may span lines, e.g. a PEM key).
VENDOR_EXTRA_ENV=()
vendor_env() {
  VENDOR_ENV=(
    "ATV_SERVER__PUBLIC_ADDR=127.0.0.1:$2"
    "ATV_SERVER__INTERNAL_ADDR=127.0.0.1:$3"
    "ATV_SERVER__WORKERS=${BENCH_WORKERS:-1}"
    "ATV_SERVER__SHUTDOWN_TIMEOUT_SECS=${SHUTDOWN_TIMEOUT_SECS:-20}"
    "ATV_TOKEN_ENDPOINT__URL=http://127.0.0.1:$1/oauth/token"
    "ATV_CREDENTIALS__API__CLIENT_ID=$API_ID"
    "ATV_CREDENTIALS__API__CLIENT_SECRET=$API_SECRET"
    "ATV_CREDENTIALS__SDK__CLIENT_ID=$SDK_ID"
    "ATV_CREDENTIALS__SDK__CLIENT_SECRET=$SDK_SECRET"
    # Open caller checks unless a run turns them on (VENDOR_EXTRA_ENV comes
    # later and wins); rate limits off, since one wrk client is one caller.
    "ATV_CALLER_AUTH__MODE=none"
    "ATV_CALLER_AUTH__ALLOW_UNAUTHENTICATED=true"
    "ATV_INTERNAL_AUTH__MODE=none"
    "ATV_INTERNAL_AUTH__ALLOW_UNAUTHENTICATED=true"
    "ATV_RATE_LIMIT__PER_CALLER_PER_MINUTE=0"
    "${VENDOR_EXTRA_ENV[@]}"
  )
}

# start_vendor UPSTREAM_PORT PUBLIC_PORT INTERNAL_PORT: sets VENDOR_PID and
# VENDOR_T0 (unix ms just before exec). Does not wait.
start_vendor() {
  vendor_env "$1" "$2" "$3"
  VENDOR_T0=$(now_ms)
  start_bg "vendor-$2" env "${VENDOR_ENV[@]}" "${ON_SERVER_CPU[@]}" "$VENDOR" serve
  VENDOR_PID=$LAST_PID
}

# The service's metrics on its internal PORT.
metrics_url() { echo "http://127.0.0.1:$1/metrics"; }
# A vendor metric sample: metric PORT NAME LABELS (0 when absent).
metric() { "$PROBE" metric "$(metrics_url "$1")" "$2" "$3"; }

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

# probe ARGS...: runs the accounting load probe on the load CPU; JSON on stdout.
probe() { "${ON_LOAD_CPU[@]}" "$PROBE" load "$@"; }

# start_stack LIFETIME LATENCY_MS [fake args]: a fake upstream and the
# service on free ports UP, PUB and INT (settings from VENDOR_EXTRA_ENV too);
# returns once the service is ready.
start_stack() {
  UP=$(free_port); PUB=$(free_port); INT=$(free_port)
  start_fake "$UP" "$@"
  start_vendor "$UP" "$PUB" "$INT"
  wait_http_ok "http://127.0.0.1:$PUB/readyz"
}

# fault_mark start|end: when the injected fault began or ended, for the
# runner's outcome-over-time chart (ATV_BENCH_MARKS, set by `atv-bench run`).
fault_mark() {
  [ -z "${ATV_BENCH_MARKS:-}" ] || echo "fault_$1 $(now_ms)" >>"$ATV_BENCH_MARKS"
}

# judge DRILL ARGS...: the drill's one PASS/FAIL line; exits 1 on FAIL.
judge() { "$PROBE" verdict "$@"; }
