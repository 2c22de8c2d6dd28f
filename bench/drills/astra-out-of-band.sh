#!/usr/bin/env bash
# Out-of-band rotation through the proxy (issue 21): one PostgreSQL cluster,
# the fake Astra, REPLICAS (3) vendor replicas. USERS (1,000) are
# authorized; then the fake replaces every user's access token behind the
# service's back (another client of the same Astra app refreshing), and
# every user's GET /v1/user goes through every replica's proxy at once
# (CONCURRENCY in flight).
#
# PASS: callers see no 401 (every answer 200, the upstream's own, each user
# answered as one Astra user and never as another's), and Astra counts
# exactly one refresh per user (`atv-bench astra out-of-band`).
#
#   USERS=1000 CONCURRENCY=64 LATENCY_MS=20 bench/drills/astra-out-of-band.sh
#   BENCH_PROFILE=debug BENCH_NO_BUILD=1 USERS=300 …   # CI smoke
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=bench/astra.sh
source "$(dirname "$0")/../astra.sh"

USERS="${USERS:-1000}"
REPLICAS="${REPLICAS:-3}"
CONCURRENCY="${CONCURRENCY:-64}"
LATENCY_MS="${LATENCY_MS:-20}"

astra_drill_setup astra-out-of-band "$REPLICAS"
t=$(now_ms)
"${ON_LOAD_CPU[@]}" "$PROBE" astra seed --fake "$ASTRA_URL" --targets "$TARGETS" \
  --users "$USERS" --redirect-uri "$REDIRECT" --client-id "$ASTRA_ID" >&2
log "seeded $USERS users in $(($(now_ms) - t)) ms"
fake_astra_latency "$LATENCY_MS"

"${ON_LOAD_CPU[@]}" "$PROBE" astra out-of-band --name astra-out-of-band --fake "$ASTRA_URL" \
  --users "$USERS" --targets "$TARGETS" --concurrency "$CONCURRENCY"
