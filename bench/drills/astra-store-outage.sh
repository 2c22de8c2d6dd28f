#!/usr/bin/env bash
# PostgreSQL goes away under load. USERS (20,000) with valid tokens; WARM
# (2,000) of them are requested on every replica first, so each replica's
# read-through cache (astra.cache_capacity) holds them. Load at RATE (200/s)
# over CONNECTIONS (32) clients asks for cached and uncached users in turn,
# on the REPLICAS (3) in turn. PostgreSQL is stopped (`pg_ctl stop -m
# fast`) for OUTAGE_SECS (30), then started on the same port.
# PASS: cached users get 200 throughout; uncached ones get 200 or a 503
# with Retry-After, each within 1.5 s (astra.store_timeout_ms = 1000), none
# unanswered; 2 s after the database is back every request gets 200 again;
# afterwards every user refreshes and none changed status.
#
# Needs astra.cache_capacity and astra.store_timeout_ms; OUTAGE_BASELINE=1
# runs without setting them (a vendor from before they existed).
#
#   USERS=20000 OUTAGE_SECS=30 bench/drills/astra-store-outage.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=bench/astra.sh
source "$(dirname "$0")/../astra.sh"

USERS="${USERS:-20000}"
WARM="${WARM:-2000}"
REPLICAS="${REPLICAS:-3}"
RATE="${RATE:-200}"
CONNECTIONS="${CONNECTIONS:-32}"
OUTAGE_SECS="${OUTAGE_SECS:-30}"

if [ "${OUTAGE_BASELINE:-0}" != 1 ]; then
  ASTRA_EXTRA_ENV=(
    "ATV_ASTRA__CACHE_CAPACITY=${CACHE_CAPACITY:-100000}"
    "ATV_ASTRA__STORE_TIMEOUT_MS=${STORE_TIMEOUT_MS:-1000}"
  )
fi
astra_drill_setup astra-store-outage "$REPLICAS"
astra_probe seed-direct --fake "$ASTRA_URL" --store-url "$PG_URL" --users "$USERS" >&2

MARKS="$BENCH_TMP/marks"
STOP="$BENCH_TMP/stop"
LOADING="$BENCH_TMP/loading"
: >"$MARKS"
astra_probe store-outage --name astra-store-outage --fake "$ASTRA_URL" --targets "$TARGETS" \
  --users "$USERS" --warm "$WARM" --store-url "$PG_URL" --rate "$RATE" \
  --connections "$CONNECTIONS" --loading-file "$LOADING" --stop-file "$STOP" --marks "$MARKS" \
  ${REPORT:+--report "$REPORT"} &
probe_pid=$!
until [ -e "$LOADING" ]; do
  kill -0 "$probe_pid" 2>/dev/null || { wait "$probe_pid"; exit 1; }
  sleep 0.1
done
sleep 5
echo "db_down $(now_ms)" >>"$MARKS"
fault_mark start
pg_down
log "postgres stopped for $OUTAGE_SECS s"
sleep "$OUTAGE_SECS"
pg_up
echo "db_up $(now_ms)" >>"$MARKS"
fault_mark end
log "postgres back"
sleep 8
touch "$STOP"
wait "$probe_pid"
