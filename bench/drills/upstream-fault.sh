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
# Env: LIFETIME (upstream token life, s), FAULT_AT (s after ready), FAULT_SECS,
# AFTER_SECS (load after the fault), RATE (req/s), RECOVERY_MS.
source "$(dirname "$0")/../lib.sh"

NAME="$1" MODE="$2" EXPECT="$3"
LIFETIME="${LIFETIME:-20}"
FAULT_AT="${FAULT_AT:-2}"
FAULT_SECS="${FAULT_SECS:-30}"
AFTER_SECS="${AFTER_SECS:-10}"
RATE="${RATE:-200}"
RECOVERY_MS="${RECOVERY_MS:-2000}"
build_release

UP=$(free_port); PUB=$(free_port); INT=$(free_port)
start_fake "$UP" "$LIFETIME" "${UPSTREAM_LATENCY_MS:-80}"
start_vendor "$UP" "$PUB" "$INT"
wait_http_ok "http://127.0.0.1:$PUB/readyz"
t_ready=$(now_ms)
MARKS="$BENCH_TMP/marks"
: >"$MARKS"
# The token fetched at start-up stops being handed out when min(30 s, L/4)
# is left; JWT exp is whole seconds, hence one more second of slack.
valid_ms=$(python3 -c "L=$LIFETIME; print(int((L - min(30, L/4) - 1.5) * 1000))")
echo "valid_until $((t_ready + valid_ms))" >>"$MARKS"

total=$((FAULT_AT + FAULT_SECS + AFTER_SECS))
log "$NAME: $MODE for ${FAULT_SECS}s from +${FAULT_AT}s, token lifetime ${LIFETIME}s, ${RATE} req/s for ${total}s"
probe --url "http://127.0.0.1:$PUB/astrada-sdk-token" --rate "$RATE" --connections 16 \
  --duration-secs "$total" --marks "$MARKS" >"$BENCH_TMP/probe.json" &
PROBE_PID=$!

sleep "$FAULT_AT"
requests_before=$(fake_stats "$UP" | json "j['requests']")
echo "fault $(now_ms)" >>"$MARKS"
if [ "$MODE" = down ]; then
  stop_pid "$FAKE_PID"
  requests_during="(process down)"
else
  fake_mode "$UP" "$MODE"
fi
sleep "$FAULT_SECS"
if [ "$MODE" = down ]; then
  echo "endpoint_back $(now_ms)" >>"$MARKS"
  start_fake "$UP" "$LIFETIME" "${UPSTREAM_LATENCY_MS:-80}"
else
  requests_during=$(( $(fake_stats "$UP" | json "j['requests']") - requests_before ))
  echo "endpoint_back $(now_ms)" >>"$MARKS"
  fake_mode "$UP" '{"mode":"ok"}'
fi
wait "$PROBE_PID"

python3 - "$NAME" "$EXPECT" "$(cat "$BENCH_TMP/probe.json")" "$RECOVERY_MS" "$requests_during" \
  "$(curl -fsS "http://127.0.0.1:$INT/metrics" | grep '^atv_token_exchanges_total{set="sdk"' | sed 's/atv_token_exchanges_total//' | tr '\n' ' ')" <<'PY'
import json, sys
name, expect, p, recovery_ms, during, exchanges = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6].strip()
marks = {m["label"]: m for m in p["marks"]}
st = p["statuses"]
ok200, s503 = st.get("200", 0), st.get("503", 0)
other = sum(v for k, v in st.items() if k not in ("200", "503"))
errors = sum(p["errors"].values())
failed = p["sent"] - ok200
lost = p["sent"] - p["answered"] - errors
before_valid = marks["valid_until"]["failed_sent_before"]
recovery = marks["endpoint_back"]["first_ok_after_ms"]
max_ms = p["latency_ms"]["max"]
counts = (f"{p['sent']} sent, {p['answered']} answered ({ok200} x 200, {s503} x 503, {other} other), "
          f"{errors} transport errors, {p['hung']} hung, {lost} lost; max latency {max_ms:.1f} ms")
import re
failed_exchanges = sum(int(float(n)) for outcome, n in re.findall(r'outcome="(\w+)"\} (\S+)', exchanges) if outcome != "ok")
if expect == "valid":
    # The outage must have hit at least one refresh, or the drill proved nothing.
    ok = failed == 0 and p["hung"] == 0 and lost == 0 and failed_exchanges > 0
    detail = f"{counts}; upstream exchanges by outcome: {exchanges}"
else:
    ok = (p["hung"] == 0 and lost == 0 and errors == 0 and other == 0 and s503 > 0
          and p["status_503_without_retry_after"] == 0 and max_ms <= 3100 and before_valid == 0
          and recovery is not None and recovery <= recovery_ms)
    detail = (f"{counts}; {p['status_503_without_retry_after']} x 503 without Retry-After; "
              f"{before_valid} failed while the token was valid; recovery {recovery} ms after the endpoint "
              f"returned (limit {recovery_ms}); upstream requests during the fault: {during}; "
              f"vendor exchanges by outcome: {exchanges}")
print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
sys.exit(0 if ok else 1)
PY
