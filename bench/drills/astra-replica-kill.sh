#!/usr/bin/env bash
# A replica dies holding refresh leases. USERS (600) are seeded with expired
# access tokens; the fake Astra answers after 2 s; every user's token is
# requested once on each of REPLICAS (3) replicas, CONCURRENCY (192) in
# flight. As soon as replica3 holds at least MIN_HELD (10) unexpired leases
# (psql: lease_holder starts with its HOSTNAME) it is kill -9'd. Its leases
# (astra.lease_secs = 5, Astra timeout 4 s) expire and the survivors take
# over. Then, through the survivors, every user's token and a
# stale-generation refresh of it.
# PASS: the kill hit held leases, no user ends reauthorization_required,
# survivors answered only 200 or 503 (busy, with Retry-After) during the
# load, and afterwards every user refreshes and the new token is the one the
# fake holds (no refresh token lost). Refreshes per user are reported.
#
#   USERS=600 bench/drills/astra-replica-kill.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=bench/astra.sh
source "$(dirname "$0")/../astra.sh"

USERS="${USERS:-600}"
REPLICAS="${REPLICAS:-3}"
CONCURRENCY="${CONCURRENCY:-192}"
MIN_HELD="${MIN_HELD:-10}"
LEASE_SECS=5

ASTRA_EXTRA_ENV=(
  "ATV_ASTRA__LEASE_SECS=$LEASE_SECS"
  "ATV_ASTRA__TIMEOUT_MS=4000"
  "ATV_ASTRA__CONNECT_TIMEOUT_MS=1000"
  # Only token requests refresh in this drill.
  "ATV_ASTRA__SCHEDULER_INTERVAL_SECS=86400"
)
astra_drill_setup astra-replica-kill "$REPLICAS"
astra_probe seed-direct --fake "$ASTRA_URL" --store-url "$PG_URL" --users "$USERS" \
  --access-expires-in-secs 0 >&2
fake_astra_latency 2000

MARKS="$BENCH_TMP/marks"
: >"$MARKS"
survivors=$(seq -s, 0 $((REPLICAS - 2)))
astra_probe replica-kill --name astra-replica-kill --fake "$ASTRA_URL" --targets "$TARGETS" \
  --users "$USERS" --survivors "$survivors" --store-url "$PG_URL" --marks "$MARKS" \
  --concurrency "$CONCURRENCY" --lease-secs "$LEASE_SECS" ${REPORT:+--report "$REPORT"} &
probe_pid=$!

victim="replica$REPLICAS"
start=$(now_ms)
held=0
while [ $(($(now_ms) - start)) -lt 30000 ]; do
  held=$(leases_held_by "$victim")
  [ "$held" -lt "$MIN_HELD" ] || break
  sleep 0.05
done
fault_mark start
kill -KILL "${REPLICA_PIDS[$((REPLICAS - 1))]}"
echo "kill $(now_ms) $held" >>"$MARKS"
log "kill -9 $victim holding $held leases"
wait "$probe_pid"
