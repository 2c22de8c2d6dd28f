#!/usr/bin/env bash
# Rolling restart under load. USERS (2,000) whose stored access tokens have
# expired (so the first request for each refreshes it at the fake Astra, 20
# ms away, and refreshes are in flight when a replica is told to stop); the probe
# requests random users' tokens at RATE (300/s) over CONNECTIONS (16)
# clients through a load-balancer model: round robin over the REPLICAS (3),
# moving to the next replica when one refuses the connection (a Kubernetes
# Service stops routing to a terminating pod). Meanwhile each replica in turn
# gets SIGTERM, is waited for, started again on its ports and waited for
# (/readyz); the load stops 3 s after the last one is back. Like a proxy,
# the model retries a GET once on the next replica when its connection was
# closed before any answer (a keep-alive connection the stopping replica
# closed as the request went out; a single replica would not have answered
# it either).
# PASS: every request answered 200: no non-200 answer and no request dropped
# by a replica that had accepted it (after that one retry).
#
#   USERS=2000 RATE=300 bench/drills/astra-rolling-restart.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
# shellcheck source=bench/astra.sh
source "$(dirname "$0")/../astra.sh"

USERS="${USERS:-2000}"
REPLICAS="${REPLICAS:-3}"
RATE="${RATE:-300}"
CONNECTIONS="${CONNECTIONS:-16}"

FAKE_ASTRA_START='{"latency_ms":20}'
astra_drill_setup astra-rolling-restart "$REPLICAS"
astra_probe seed-direct --fake "$ASTRA_URL" --store-url "$PG_URL" --users "$USERS" \
  --access-expires-in-secs "${ACCESS_EXPIRES_IN_SECS:-0}" >&2

MARKS="$BENCH_TMP/marks"
STOP="$BENCH_TMP/stop"
: >"$MARKS"
astra_probe rolling-restart --name astra-rolling-restart --targets "$TARGETS" --users "$USERS" \
  --rate "$RATE" --connections "$CONNECTIONS" --stop-file "$STOP" --marks "$MARKS" \
  ${REPORT:+--report "$REPORT"} &
probe_pid=$!
sleep 3
for r in $(seq 1 "$REPLICAS"); do
  fault_mark start
  restart_astra_replica "$UP" "$r" "$REDIRECT"
  fault_mark end
  echo "restart replica$r exit_code=$RESTART_RC exited_ms=$RESTART_EXIT_MS ready_ms=$RESTART_READY_MS" >>"$MARKS"
  log "replica$r: exit $RESTART_RC after $RESTART_EXIT_MS ms, ready again after $RESTART_READY_MS ms"
  sleep 2
done
sleep 3
touch "$STOP"
wait "$probe_pid"
