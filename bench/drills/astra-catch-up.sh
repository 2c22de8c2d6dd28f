#!/usr/bin/env bash
# Scheduler catch-up after an outage: USERS (100,000) whose refresh tokens
# are 8 days old (2 days left at Astra, already due) are written straight
# into PostgreSQL and the fake Astra (`atv-bench astra seed-direct`); the
# schedulers of all REPLICAS (3) refresh them. PASS: every user refreshed
# exactly once (the fake's count), none changes status, no row keeps the old
# refresh token, the fake never saw more than CAP (+1 per replica: pacing slips) token
# requests in any 1-second window, and the catch-up fits the 2 days both as measured and
# extrapolated to the default cap of 20/s. Each replica's share is its
# atv_astra_refreshes_total{trigger="scheduled",outcome="ok"}.
#
# CAP is astra.max_calls_per_sec, for the whole fleet (the global cap: live
# replicas share it). Against a vendor whose cap is still per replica, run
# with CAP_SCOPE=replica to check REPLICAS x CAP instead.
#
#   USERS=100000 CAP=300 bench/drills/astra-catch-up.sh
#   BENCH_PROFILE=debug BENCH_NO_BUILD=1 USERS=2000 CAP=200 …   # CI size
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=bench/astra.sh
source "$(dirname "$0")/../astra.sh"

USERS="${USERS:-100000}"
REPLICAS="${REPLICAS:-3}"
CAP="${CAP:-300}"
CAP_SCOPE="${CAP_SCOPE:-global}"
LATENCY_MS="${LATENCY_MS:-20}"

MAX_CALLS_PER_SEC="$CAP"
ASTRA_EXTRA_ENV=(
  "ATV_ASTRA__SCHEDULER_INTERVAL_SECS=${INTERVAL_SECS:-2}"
  "ATV_ASTRA__SCHEDULER_BATCH=${BATCH:-100}"
)
FAKE_ASTRA_START="{\"latency_ms\":$LATENCY_MS}"
astra_drill_setup astra-catch-up "$REPLICAS"

checked_cap="$CAP"
[ "$CAP_SCOPE" = global ] || checked_cap=$((CAP * REPLICAS))
astra_probe catch-up --name astra-catch-up --fake "$ASTRA_URL" --store-url "$PG_URL" \
  --targets "$TARGETS" --users "$USERS" --cap "$checked_cap" --cap-tolerance "$REPLICAS" \
  --refresh-issued-ago-secs $((8 * 86400)) --next-refresh-in-secs -60 \
  --deadline-secs "${DEADLINE_SECS:-3600}" ${REPORT:+--report "$REPORT"}
