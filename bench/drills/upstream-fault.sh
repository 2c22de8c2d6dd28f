#!/usr/bin/env bash
# One token-endpoint fault under steady load, judged on every request.
#
#   upstream-fault.sh NAME MODE EXPECT
#
# MODE: `down` (the fake upstream process stopped: connection refused, then
# restarted on the same port) or a fake mode JSON ({"mode":"slow","ms":4000},
# {"mode":"garbage"}, {"mode":"invalid_client"}, {"mode":"unavailable"}).
# EXPECT: `valid` — the fault ends while the cached token is still valid:
# zero failed requests; `expire` — the fault outlasts the token: every
# request is answered within 3 s, each failure is a 503 with Retry-After,
# nothing fails while the token was valid, and the first success after the
# endpoint is back comes within RECOVERY_MS (2000).
#
# Env: LIFETIME (upstream token life, s; `auto`: the shortest that puts a
# FAULT_SECS outage across a refresh while the token stays valid, with
# FAULT_AT 3 s before the refresh), FAULT_AT (s after ready), FAULT_SECS,
# AFTER_SECS (load after the fault), RATE (req/s), RECOVERY_MS (or
# `backoff-max`: the cache's backoff_max_ms; `exchange-timeout`: the token
# endpoint's timeout_ms plus 500). The verdict is `atv-bench verdict fault`.
source "$(dirname "$0")/../lib.sh"

NAME="$1" MODE="$2" EXPECT="$3"
LIFETIME="${LIFETIME:-20}"
FAULT_AT="${FAULT_AT:-2}"
FAULT_SECS="${FAULT_SECS:-30}"
AFTER_SECS="${AFTER_SECS:-10}"
RATE="${RATE:-200}"
RECOVERY_MS="${RECOVERY_MS:-2000}"
build_release
if [ "$LIFETIME" = auto ]; then
  read -r LIFETIME FAULT_AT < <("$PROBE" rule down-valid-plan --down-secs "$FAULT_SECS")
fi

start_stack "$LIFETIME" "${UPSTREAM_LATENCY_MS:-80}"
t_ready=$(now_ms)
MARKS="$BENCH_TMP/marks"
: >"$MARKS"
# Until when the token fetched at start-up is handed out.
echo "valid_until $((t_ready + $("$PROBE" rule valid-ms --lifetime-secs "$LIFETIME")))" >>"$MARKS"

total=$((FAULT_AT + FAULT_SECS + AFTER_SECS))
log "$NAME: $MODE for ${FAULT_SECS}s from +${FAULT_AT}s, token lifetime ${LIFETIME}s, ${RATE} req/s for ${total}s"
probe --url "http://127.0.0.1:$PUB/astrada-sdk-token" --rate "$RATE" --connections 16 \
  --duration-secs "$total" --marks "$MARKS" >"$BENCH_TMP/probe.json" &
PROBE_PID=$!

sleep "$FAULT_AT"
requests_before=$(fake_stat "$UP" /requests)
echo "fault $(now_ms)" >>"$MARKS"
fault_mark start
if [ "$MODE" = down ]; then
  stop_pid "$FAKE_PID"
  requests_during="(process down)"
else
  fake_mode "$UP" "$MODE"
fi
sleep "$FAULT_SECS"
if [ "$MODE" = down ]; then
  echo "endpoint_back $(now_ms)" >>"$MARKS"
  fault_mark end
  start_fake "$UP" "$LIFETIME" "${UPSTREAM_LATENCY_MS:-80}"
else
  requests_during=$(($(fake_stat "$UP" /requests) - requests_before))
  echo "endpoint_back $(now_ms)" >>"$MARKS"
  fault_mark end
  fake_mode "$UP" '{"mode":"ok"}'
fi
wait "$PROBE_PID"

judge fault --name "$NAME" --expect "$EXPECT" --probe "$BENCH_TMP/probe.json" \
  --metrics "$(metrics_url "$INT")" --recovery "$RECOVERY_MS" --requests-during "$requests_during"
