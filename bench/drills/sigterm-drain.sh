#!/usr/bin/env bash
# SIGTERM under load: every request sent before the signal is answered (200),
# nothing hangs, and the process exits 0 within the drain time.
#   A. steady load on a cached token;
#   B. requests waiting on a slow (1.5 s) first exchange when SIGTERM lands —
#      they must still get their token, not a reset connection.
# Requests sent after the signal may be refused (the listener is closed): they
# are counted, not failed.
source "$(dirname "$0")/../lib.sh"
build_release

drain() {
  local phase="$1" rate="$2" secs="$3" term_after="$4" up pub int marks t_term code t_exit
  up=$(free_port); pub=$(free_port); int=$(free_port)
  marks="$BENCH_TMP/marks-$phase"; : >"$marks"
  if [ "$phase" = B ]; then
    start_fake "$up" 300 80 --mode '{"mode":"slow","ms":1500}'
  else
    start_fake "$up" 300 80
  fi
  start_vendor "$up" "$pub" "$int"
  # B: listening is enough; the first exchange is what the requests wait on.
  wait_http_ok "http://127.0.0.1:$pub/$([ "$phase" = B ] && echo healthz || echo readyz)"
  probe --url "http://127.0.0.1:$pub/astrada-sdk-token" --rate "$rate" --connections 32 \
    --duration-secs "$secs" --marks "$marks" >"$BENCH_TMP/probe-$phase.json" &
  local probe_pid=$!
  sleep "$term_after"
  t_term=$(now_ms)
  echo "sigterm $t_term" >>"$marks"
  fault_mark start
  kill -TERM "$VENDOR_PID"
  code=0; wait "$VENDOR_PID" || code=$?
  t_exit=$(($(now_ms) - t_term))
  fault_mark end
  wait "$probe_pid"
  local verdict_rc=0
  judge sigterm-drain --phase "$phase" --probe "$BENCH_TMP/probe-$phase.json" \
    --exit-code "$code" --exit-ms "$t_exit" || verdict_rc=1
  stop_pid "$FAKE_PID"
  return "$verdict_rc"
}

rc=0
drain A 1000 6 3 || rc=1
drain B 300 3 0.7 || rc=1
exit "$rc"
