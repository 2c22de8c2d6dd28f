#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: stable on a
# loaded machine, where wall-clock throughput is not. Each server runs under
# callgrind; after a warm-up its counters are zeroed, wrk sends requests for
# CG_SECS, the counters are dumped, then the same again with no load (the
# idle baseline: timers, housekeeping) and the idle rate is subtracted.
#
#   bench/callgrind.sh                 # vendor (every production layer on) and ceiling
#   CG_TARGETS=vendor CG_SECS=5 bench/callgrind.sh
#
# The vendor runs as in production: caller auth jwt with a valid session,
# an allowed Origin, the rate limit on (far above what wrk sends), the audit
# trail, metrics, JSON logs at info, request ids. Output: one line per
# target and, in $CG_OUT (default /tmp/atv-callgrind), the dumps and an
# inclusive per-function profile (`callgrind_annotate --inclusive=yes`).
source "$(dirname "$0")/lib.sh"

CG_SECS="${CG_SECS:-10}"
CG_CONNS="${CG_CONNS:-8}"
CG_TARGETS="${CG_TARGETS:-vendor ceiling}"
CG_OUT="${CG_OUT:-/tmp/atv-callgrind}"
ORIGIN="https://app.bench.invalid"
mkdir -p "$CG_OUT"
command -v valgrind >/dev/null || { echo "valgrind is missing" >&2; exit 2; }
build_release
VENDOR="${CG_VENDOR:-$VENDOR}"

source "$BENCH_ROOT/bench/auth.sh"
auth_setup

# total_ir FILE: the instruction total of one callgrind dump.
total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# measure NAME PID URL: prints "NAME instructions/request requests".
measure() {
  local name="$1" pid="$2" url="$3" out reqs load idle
  local hdr=(-H "Authorization: $AUTH_HEADER" -H "Origin: $ORIGIN")
  "${ON_LOAD_CPU[@]}" wrk -t1 -c"$CG_CONNS" -d3s "${hdr[@]}" "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  out=$("${ON_LOAD_CPU[@]}" wrk -t1 -c"$CG_CONNS" -d"${CG_SECS}s" "${hdr[@]}" "$url")
  callgrind_control -d load "$pid" >/dev/null
  reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
  grep -q "Non-2xx" <<<"$out" && { echo "$name: non-2xx answers: $out" >&2; exit 1; }
  callgrind_control -z "$pid" >/dev/null
  sleep "$CG_SECS"
  callgrind_control -d idle "$pid" >/dev/null
  sleep 1
  # Dumps are numbered in order: .1 under load, .2 idle.
  load=$(total_ir "$(ls "$CG_OUT/$name".*.1)")
  idle=$(total_ir "$(ls "$CG_OUT/$name".*.2)")
  callgrind_annotate --inclusive=yes "$(ls "$CG_OUT/$name".*.1)" >"$CG_OUT/$name.inclusive.txt" 2>/dev/null || true
  callgrind_annotate "$(ls "$CG_OUT/$name".*.1)" >"$CG_OUT/$name.self.txt" 2>/dev/null || true
  echo "$name $(((load - idle) / reqs)) instructions/request ($reqs requests, load $load, idle $idle)"
}

VG=(valgrind --tool=callgrind --dump-instr=no)
for target in $CG_TARGETS; do
  rm -f "$CG_OUT/$target".*
  case "$target" in
    vendor)
      UP=$(free_port); PUB=$(free_port); INT=$(free_port)
      start_fake "$UP" 3600 0
      VENDOR_EXTRA_ENV=("${AUTH_ENV[@]}"
        "ATV_CORS__ALLOWED_ORIGINS=[\"$ORIGIN\"]"
        "ATV_RATE_LIMIT__PER_CALLER_PER_MINUTE=60000000"
        "ATV_RATE_LIMIT__BURST=1000000"
        "ATV_LOG__FORMAT=json" "ATV_LOG__FILTER=info")
      vendor_env "$UP" "$PUB" "$INT"
      start_bg "cg-vendor" env "${VENDOR_ENV[@]}" "${ON_SERVER_CPU[@]}" "${VG[@]}" \
        --callgrind-out-file="$CG_OUT/vendor.%p" "$VENDOR" serve
      pid=$LAST_PID
      wait_http_ok "http://127.0.0.1:$PUB/readyz" 120000
      BODY_BYTES=$(curl -fsS -H "Authorization: $AUTH_HEADER" "http://127.0.0.1:$PUB/astrada-sdk-token" | wc -c)
      measure vendor "$pid" "http://127.0.0.1:$PUB/astrada-sdk-token"
      ;;
    ceiling)
      CEIL=$(free_port)
      start_bg "cg-ceiling" "${ON_SERVER_CPU[@]}" "${VG[@]}" --callgrind-out-file="$CG_OUT/ceiling.%p" \
        "$BIN/ceiling" --addr "127.0.0.1:$CEIL" --workers 1 --body-bytes "${BODY_BYTES:-420}"
      pid=$LAST_PID
      wait_http_ok "http://127.0.0.1:$CEIL/" 120000
      measure ceiling "$pid" "http://127.0.0.1:$CEIL/"
      ;;
  esac
  stop_pid "$pid"
done
