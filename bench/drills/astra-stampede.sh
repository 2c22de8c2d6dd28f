#!/usr/bin/env bash
# Per-user Astra stampede across replicas: one PostgreSQL cluster, the fake
# Astra, REPLICAS (3) vendor replicas on it. USERS (10,000) are authorized,
# then every access token is expired in the database, then every user's token
# is requested once per replica, all at once in random order (CONCURRENCY in
# flight). PASS: every answer 200, exactly one refresh per user at the fake,
# no replaced token handed out (`atv-bench astra stampede`).
#
# Then, unless COHERENCE=0, the coherence drill on the same users: a
# stale-generation refresh for every user on every replica at once, then a
# token request on every replica: one refresh per user, only current tokens.
#
# Then, unless NAIVE=0, the same stampede against REPLICAS naive peers
# (bench/runner/src/bin/naive_astra_peer.rs: read, refresh, write, no lease) sharing
# one table, for contrast: its line reads CONTRAST, not FAIL.
#
#   USERS=10000 CONCURRENCY=64 LATENCY_MS=20 bench/drills/astra-stampede.sh
#   BENCH_PROFILE=debug BENCH_NO_BUILD=1 USERS=300 NAIVE=0 …   # CI smoke
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=bench/astra.sh
source "$(dirname "$0")/../astra.sh"

USERS="${USERS:-10000}"
REPLICAS="${REPLICAS:-3}"
CONCURRENCY="${CONCURRENCY:-64}"
LATENCY_MS="${LATENCY_MS:-20}"
COHERENCE="${COHERENCE:-1}"
NAIVE="${NAIVE:-1}"

if [ "${BENCH_PROFILE:-release}" = release ]; then build_release; fi
for exe in "$VENDOR" "$PROBE" "$BIN/fake_astra" "$BIN/fake_upstream" "$BIN/naive_astra_peer"; do
  if [ ! -x "$exe" ]; then
    echo "FAIL astra-stampede: $exe missing (build first)"
    exit 1
  fi
done
raise_nofile 65536

if ! pg_start; then
  echo "SKIP astra-stampede: no PostgreSQL (run scripts/test-deps/postgres.sh)"
  exit 0
fi
log "postgres on $PG_PORT"

UP=$(free_port)
start_fake "$UP" 300 0
AST=$(free_port)
REDIRECT="http://127.0.0.1:$AST/bench/callback"
start_fake_astra "$AST" 0 "$REDIRECT"
t=$(now_ms)
start_astra_replicas "$UP" "$REPLICAS" "$REDIRECT"
log "$REPLICAS replicas ready in $(($(now_ms) - t)) ms: $TARGETS"

t=$(now_ms)
"${ON_LOAD_CPU[@]}" "$PROBE" astra seed --fake "$ASTRA_URL" --targets "$TARGETS" \
  --users "$USERS" --redirect-uri "$REDIRECT" --client-id "$ASTRA_ID" >&2
expired=$(psql_atv "UPDATE astra_users SET access_expires_at = 0 RETURNING 1" | wc -l)
log "seeded $USERS users in $(($(now_ms) - t)) ms; expired $expired access tokens"
fake_astra_latency "$LATENCY_MS"

rc=0
drill() {
  "${ON_LOAD_CPU[@]}" "$PROBE" astra "$@" --fake "$ASTRA_URL" --users "$USERS" \
    --concurrency "$CONCURRENCY" || rc=1
}
drill stampede --name astra-stampede --targets "$TARGETS"
if [ "$COHERENCE" = 1 ]; then
  drill coherence --name astra-coherence --targets "$TARGETS"
fi

if [ "$NAIVE" = 1 ]; then
  fake_astra_latency 0
  start_naive_peers "$REPLICAS" "$REDIRECT"
  t=$(now_ms)
  "${ON_LOAD_CPU[@]}" "$PROBE" astra seed --fake "$ASTRA_URL" --targets "$NAIVE_TARGETS" \
    --users "$USERS" --prefix n --redirect-uri "$REDIRECT" --client-id "$ASTRA_ID" >&2
  psql_atv "UPDATE naive_astra_users SET access_expires_at = 0" >/dev/null
  log "naive peers: seeded $USERS users in $(($(now_ms) - t)) ms"
  fake_astra_latency "$LATENCY_MS"
  drill stampede --name naive-astra-peer --prefix n --targets "$NAIVE_TARGETS" --contrast
fi
exit "$rc"
