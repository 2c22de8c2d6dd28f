#!/usr/bin/env bash
# Refresh soak: a short-lived upstream token (SOAK_LIFETIME, default 20 s)
# under steady load (SOAK_RATE req/s for SOAK_SECS, default 500 for 600 s).
# Passes when every request got a 200, each credential set saw exactly one
# upstream exchange per refresh window (no caller ever triggered one: zero
# cache misses), and the slowest answer within 1 s of any token rotation
# took under 5 ms; judged by `atv-bench verdict soak`, which holds the window
# rule. Last line: the measurements as JSON (for bench/run.sh).
source "$(dirname "$0")/lib.sh"

SOAK_SECS="${SOAK_SECS:-600}"
SOAK_RATE="${SOAK_RATE:-500}"
SOAK_LIFETIME="${SOAK_LIFETIME:-20}"
UPSTREAM_LATENCY_MS="${UPSTREAM_LATENCY_MS:-80}"
build_release

start_stack "$SOAK_LIFETIME" "$UPSTREAM_LATENCY_MS"
log "soak: ${SOAK_SECS}s at ${SOAK_RATE} req/s, upstream token lifetime ${SOAK_LIFETIME}s"
probe --url "http://127.0.0.1:$PUB/astrada-sdk-token" --rate "$SOAK_RATE" \
  --connections 16 --duration-secs "$SOAK_SECS" >"$BENCH_TMP/probe.json"
judge soak --probe "$BENCH_TMP/probe.json" --fake "$(fake_control "$UP")" \
  --metrics "$(metrics_url "$INT")" --lifetime-secs "$SOAK_LIFETIME" \
  --span-ms "$(($(now_ms) - VENDOR_T0))" --sdk-id "$SDK_ID" --api-id "$API_ID"
