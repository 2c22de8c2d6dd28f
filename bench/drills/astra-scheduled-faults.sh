#!/usr/bin/env bash
# The scheduler meets Astra faults. USERS (1,500) are due for a scheduled
# refresh (refresh tokens 8 days old); the schedulers of REPLICAS (3) run
# every 2 s (jittered) under astra.max_calls_per_sec = CAP (20, the whole
# fleet's: the global cap). The fake answers 503 for FAULT_SECS/2, then
# holds every call past the vendor's 1 s timeout for FAULT_SECS/2 (20 s in
# all), then recovers; SETTLE_SECS (8) later the rows and the fake's
# counters are judged (`atv-bench astra scheduled-faults`).
# PASS: some refreshes failed and none changed a user's status; every failed
# user's next_refresh_at moved at least 60 s past the failure; token
# requests at the fake <= users tried (+ calls in flight), none refreshed
# twice; at most CAP (+1 per replica: pacing slips) token requests in any
# 1-second window.
# CAP_SCOPE=replica checks REPLICAS x CAP (a vendor whose cap is per replica).
#
#   USERS=1500 CAP=20 FAULT_SECS=20 bench/drills/astra-scheduled-faults.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=bench/astra.sh
source "$(dirname "$0")/../astra.sh"

USERS="${USERS:-1500}"
REPLICAS="${REPLICAS:-3}"
CAP="${CAP:-20}"
CAP_SCOPE="${CAP_SCOPE:-global}"
FAULT_SECS="${FAULT_SECS:-20}"
SETTLE_SECS="${SETTLE_SECS:-8}"

MAX_CALLS_PER_SEC="$CAP"
ASTRA_EXTRA_ENV=(
  "ATV_ASTRA__SCHEDULER_INTERVAL_SECS=2"
  "ATV_ASTRA__TIMEOUT_MS=1000"
  "ATV_ASTRA__CONNECT_TIMEOUT_MS=500"
  "ATV_ASTRA__LEASE_SECS=5"
)
# Faulty before the first user is due.
FAKE_ASTRA_START='{"fault":{"server_error":503}}'
astra_drill_setup astra-scheduled-faults "$REPLICAS"
astra_probe seed-direct --fake "$ASTRA_URL" --store-url "$PG_URL" --users "$USERS" \
  --refresh-issued-ago-secs $((8 * 86400)) --next-refresh-in-secs -60 >&2
log "faults: 503 for $((FAULT_SECS / 2)) s"
sleep $((FAULT_SECS / 2))
fake_astra_control '{"fault":"timeout"}'
log "faults: timeouts for $((FAULT_SECS - FAULT_SECS / 2)) s"
sleep $((FAULT_SECS - FAULT_SECS / 2))
fake_astra_control '{"fault":"none"}'
log "faults over; settling $SETTLE_SECS s"
sleep "$SETTLE_SECS"

checked_cap="$CAP"
[ "$CAP_SCOPE" = global ] || checked_cap=$((CAP * REPLICAS))
astra_probe scheduled-faults --name astra-scheduled-faults --fake "$ASTRA_URL" \
  --store-url "$PG_URL" --users "$USERS" --cap "$checked_cap" --cap-tolerance "$REPLICAS" ${REPORT:+--report "$REPORT"}
