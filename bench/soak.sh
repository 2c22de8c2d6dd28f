#!/usr/bin/env bash
# Refresh soak: a short-lived upstream token (SOAK_LIFETIME, default 20 s)
# under steady load (SOAK_RATE req/s for SOAK_SECS, default 500 for 600 s).
# Passes when every request got a 200, each credential set saw exactly one
# upstream exchange per refresh window (no caller ever triggered one: zero
# cache misses), and the slowest answer within 1 s of any token rotation
# took under 5 ms. Last line: the measurements as JSON (for bench/run.sh).
source "$(dirname "$0")/lib.sh"

SOAK_SECS="${SOAK_SECS:-600}"
SOAK_RATE="${SOAK_RATE:-500}"
SOAK_LIFETIME="${SOAK_LIFETIME:-20}"
UPSTREAM_LATENCY_MS="${UPSTREAM_LATENCY_MS:-80}"
build_release

UP=$(free_port); PUB=$(free_port); INT=$(free_port)
start_fake "$UP" "$SOAK_LIFETIME" "$UPSTREAM_LATENCY_MS"
start_vendor "$UP" "$PUB" "$INT"
wait_http_ok "http://127.0.0.1:$PUB/readyz"
t_start=$(now_ms)
log "soak: ${SOAK_SECS}s at ${SOAK_RATE} req/s, upstream token lifetime ${SOAK_LIFETIME}s"
out=$(probe --url "http://127.0.0.1:$PUB/astrada-sdk-token" --rate "$SOAK_RATE" \
  --connections 16 --duration-secs "$SOAK_SECS")
t_end=$(now_ms)
python3 - "$out" "$(fake_stats "$UP")" "$SDK_ID" "$API_ID" "$SOAK_LIFETIME" \
  "$((t_end - VENDOR_T0))" "$(metric "$INT" atv_token_cache_lookups_total 'set="sdk",result="miss"')" \
  "$(metric "$INT" atv_token_exchanges_total 'set="sdk",outcome="ok"')" \
  "$(metric "$INT" atv_token_refresh_ahead_runs_total 'set="sdk"')" "$SOAK_RATE" <<'PY'
import json, math, sys
p = json.loads(sys.argv[1]); f = json.loads(sys.argv[2])
sdk, api, lifetime, span_ms = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
misses, vendor_sdk, refresh_runs, rate = float(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9]), float(sys.argv[10])
sdk_ex = f["issued_by_client"].get(sdk, 0); api_ex = f["issued_by_client"].get(api, 0)
# A token of L s is refreshed when L/2 s remain; JWT exp is whole seconds, so
# a window lasts between L/2 - 1 and L/2 s (+ the exchange). One start-up
# exchange, then one per window.
max_windows = 1 + math.ceil(span_ms / 1000 / (lifetime / 2 - 1))
min_windows = 1 + math.floor(span_ms / 1000 / (lifetime / 2 + 1))
failed = p["sent"] - p["statuses"].get("200", 0)
ok = (failed == 0 and p["hung"] == 0 and misses == 0
      and min_windows <= sdk_ex <= max_windows and min_windows <= api_ex <= max_windows
      and sdk_ex == vendor_sdk and p["rotations"] == sdk_ex - 1
      and f["requests"] == f["issued"] and p["rotation_window_max_ms"] < 5)
print(f"{'PASS' if ok else 'FAIL'} soak: {p['sent']} sent, {p['answered']} answered, {failed} failed, "
      f"{p['hung']} hung; {p['duration_secs']:.0f} s at {p['rate']:.0f} req/s; upstream exchanges sdk={sdk_ex} "
      f"api={api_ex} (windows {min_windows}..{max_windows}); token rotations seen={p['rotations']}; "
      f"cache misses={misses:.0f}; max latency within 1 s of a rotation={p['rotation_window_max_ms']:.2f} ms "
      f"(overall max {p['latency_ms']['max']:.2f} ms, p99 {p['latency_ms']['p99']:.2f} ms)")
print(json.dumps({"probe": p, "sdk_exchanges": sdk_ex, "api_exchanges": api_ex, "vendor_sdk_exchanges": vendor_sdk,
                  "refresh_ahead_runs": refresh_runs, "misses": misses, "min_windows": min_windows,
                  "max_windows": max_windows, "lifetime_secs": lifetime, "rate": rate, "pass": ok,
                  "upstream_requests": f["requests"]}))
PY
