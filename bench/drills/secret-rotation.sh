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
# Both generations accepted while the rotation is in progress, as Astrada would.
start_moto_stack --client "$API_ID:$NEW_API_SECRET" --client "$SDK_ID:$NEW_SDK_SECRET"
probe --url "http://127.0.0.1:$PUB/astrada-sdk-token" --rate 200 --connections 16 \
  --duration-secs 35 >"$BENCH_TMP/probe.json" &
PROBE_PID=$!
sleep 3
changed_before=$(reloads "$INT" changed)
fault_mark start
put_secret "$MOTO" "$NEW_API_SECRET" "$NEW_SDK_SECRET"
for _ in $(seq 100); do
  [ "$(reloads "$INT" changed)" = "$changed_before" ] || break
  sleep 0.1
done
picked_up=$([ "$(reloads "$INT" changed)" != "$changed_before" ] && echo true || echo false)
# Revoke the old secrets: the fake comes back accepting only the new ones.
stop_pid "$FAKE_PID"
API_SECRET=$NEW_API_SECRET SDK_SECRET=$NEW_SDK_SECRET start_fake "$UP" 20 80
fault_mark end
wait "$PROBE_PID"
judge secret-rotation --probe "$BENCH_TMP/probe.json" --picked-up "$picked_up" \
  --fake "$(fake_control "$UP")" --metrics "$(metrics_url "$INT")"
