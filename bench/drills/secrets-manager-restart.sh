#!/usr/bin/env bash
# Secrets Manager (moto) stopped for MOTO_DOWN_SECS (default 20) and started
# again under load, credentials re-read every 2 s: 0 failed requests (the
# credentials in force are kept while the source is unreachable).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/moto.sh"
build_release
if ! moto_available; then echo "SKIP secrets-manager-restart: $MOTO_SKIP_REASON"; exit 0; fi
MOTO_DOWN_SECS="${MOTO_DOWN_SECS:-20}"

# shellcheck disable=SC2119  # no extra fake clients
start_moto_stack
total=$((MOTO_DOWN_SECS + 10))
probe --url "http://127.0.0.1:$PUB/astrada-sdk-token" --rate 200 --connections 16 \
  --duration-secs "$total" >"$BENCH_TMP/probe.json" &
PROBE_PID=$!
sleep 3
stop_pid "$MOTO_PID"
fault_mark start
errors_before=$(reloads "$INT" error)
sleep "$MOTO_DOWN_SECS"
errors_during=$(($(reloads "$INT" error) - errors_before))
start_moto "$MOTO"
fault_mark end
put_secret "$MOTO" "$API_SECRET" "$SDK_SECRET"
wait "$PROBE_PID"
judge secrets-manager-restart --probe "$BENCH_TMP/probe.json" --errors-during "$errors_during" \
  --metrics "$(metrics_url "$INT")"
