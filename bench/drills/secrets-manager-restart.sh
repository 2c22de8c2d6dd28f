#!/usr/bin/env bash
# Secrets Manager (moto) stopped for MOTO_DOWN_SECS (default 20) and started
# again under load, credentials re-read every 2 s: 0 failed requests (the
# credentials in force are kept while the source is unreachable).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/moto.sh"
build_release
if ! moto_available; then echo "SKIP secrets-manager-restart: $MOTO_SKIP_REASON"; exit 0; fi
MOTO_DOWN_SECS="${MOTO_DOWN_SECS:-20}"

MOTO=$(free_port); UP=$(free_port); PUB=$(free_port); INT=$(free_port)
start_moto "$MOTO"
put_secret "$MOTO" "$API_SECRET" "$SDK_SECRET"
start_fake "$UP" 20 80
moto_vendor_env "$MOTO"
start_vendor "$UP" "$PUB" "$INT"
wait_http_ok "http://127.0.0.1:$PUB/readyz"
total=$((MOTO_DOWN_SECS + 10))
probe --url "http://127.0.0.1:$PUB/astrada-sdk-token" --rate 200 --connections 16 \
  --duration-secs "$total" >"$BENCH_TMP/probe.json" &
PROBE_PID=$!
sleep 3
stop_pid "$MOTO_PID"
errors_before=$(reloads "$INT" error)
sleep "$MOTO_DOWN_SECS"
errors_during=$(python3 -c "print(int(float('$(reloads "$INT" error)') - float('$errors_before')))")
start_moto "$MOTO"
put_secret "$MOTO" "$API_SECRET" "$SDK_SECRET"
wait "$PROBE_PID"
python3 - "$(cat "$BENCH_TMP/probe.json")" "$errors_during" "$(reloads "$INT" unchanged)" <<'PY'
import json, sys
p, errors_during, unchanged = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
failed = p["sent"] - p["statuses"].get("200", 0)
# The outage must have been seen by the reload loop, or the drill proved nothing.
ok = failed == 0 and p["hung"] == 0 and errors_during > 0
print(f"{'PASS' if ok else 'FAIL'} secrets-manager-restart: {p['sent']} sent, {p['answered']} answered, "
      f"{failed} failed, {p['hung']} hung; {errors_during} failed credential reads while moto was down, "
      f"{unchanged:.0f} unchanged reads in all; max latency {p['latency_ms']['max']:.1f} ms")
sys.exit(0 if ok else 1)
PY
