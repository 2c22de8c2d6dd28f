#!/usr/bin/env bash
# Client secrets rotated under load: a new secret version is put in Secrets
# Manager (moto); once the service has re-read it, the old secrets are revoked
# at the token endpoint (the fake restarts accepting only the new ones); load
# continues across two refresh windows. 0 failed requests, no invalid_client,
# and the tokens after the revocation were issued for the new secrets.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/moto.sh"
build_release
if ! moto_available; then echo "SKIP secret-rotation: $MOTO_SKIP_REASON"; exit 0; fi

NEW_API_SECRET=bench-api-secret-rotated
NEW_SDK_SECRET=bench-sdk-secret-rotated
MOTO=$(free_port); UP=$(free_port); PUB=$(free_port); INT=$(free_port)
start_moto "$MOTO"
put_secret "$MOTO" "$API_SECRET" "$SDK_SECRET"
# Both generations accepted while the rotation is in progress, as Astrada would.
start_fake "$UP" 20 80 --client "$API_ID:$NEW_API_SECRET" --client "$SDK_ID:$NEW_SDK_SECRET"
moto_vendor_env "$MOTO"
start_vendor "$UP" "$PUB" "$INT"
wait_http_ok "http://127.0.0.1:$PUB/readyz"
probe --url "http://127.0.0.1:$PUB/astrada-sdk-token" --rate 200 --connections 16 \
  --duration-secs 35 >"$BENCH_TMP/probe.json" &
PROBE_PID=$!
sleep 3
changed_before=$(reloads "$INT" changed)
put_secret "$MOTO" "$NEW_API_SECRET" "$NEW_SDK_SECRET"
for _ in $(seq 100); do
  [ "$(reloads "$INT" changed)" = "$changed_before" ] || break
  sleep 0.1
done
picked_up=$([ "$(reloads "$INT" changed)" != "$changed_before" ] && echo 1 || echo 0)
# Revoke the old secrets: the fake comes back accepting only the new ones.
stop_pid "$FAKE_PID"
API_SECRET=$NEW_API_SECRET SDK_SECRET=$NEW_SDK_SECRET start_fake "$UP" 20 80
wait "$PROBE_PID"
python3 - "$(cat "$BENCH_TMP/probe.json")" "$picked_up" "$(fake_stats "$UP")" \
  "$(metric "$INT" atv_token_exchanges_total 'set="sdk",outcome="invalid_client"')" <<'PY'
import json, sys
p, picked_up, f, invalid = json.loads(sys.argv[1]), sys.argv[2] == "1", json.loads(sys.argv[3]), float(sys.argv[4])
failed = p["sent"] - p["statuses"].get("200", 0)
ok = failed == 0 and p["hung"] == 0 and picked_up and invalid == 0 and f["issued"] >= 2
print(f"{'PASS' if ok else 'FAIL'} secret-rotation: {p['sent']} sent, {p['answered']} answered, {failed} failed, "
      f"{p['hung']} hung; new version re-read: {picked_up}; tokens issued for the new secrets after revoking "
      f"the old: {f['issued']}; invalid_client answers: {invalid:.0f}; tokens seen by callers: {p['tokens_seen']}")
sys.exit(0 if ok else 1)
PY
