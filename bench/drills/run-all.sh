#!/usr/bin/env bash
# Runs every fault drill, prints each PASS/FAIL/SKIP line, then a summary.
# Shorter runs: DOWN_SECS=10 FAULT_SECS=8 bench/drills/run-all.sh
set -uo pipefail
cd "$(dirname "$0")" || exit 2
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  (cd ../.. && cargo build --locked --release --bins --examples) || exit 2
fi
export BENCH_NO_BUILD=1
pass=0 fail=0 skip=0
lines=()
for drill in upstream-down-valid upstream-down-expiry upstream-slow upstream-garbage \
  upstream-invalid-client upstream-5xx secrets-manager-restart secret-rotation sigterm-drain; do
  out=$(./"$drill".sh 2>"${TMPDIR:-/tmp}/atv-drill-$drill.log")
  rc=$?
  verdicts=$(grep -E '^(PASS|FAIL|SKIP) ' <<<"$out")
  [ -n "$verdicts" ] || verdicts="FAIL $drill: no verdict (exit $rc; see ${TMPDIR:-/tmp}/atv-drill-$drill.log)"
  echo "$verdicts"
  lines+=("$verdicts")
  pass=$((pass + $(grep -c '^PASS' <<<"$verdicts")))
  fail=$((fail + $(grep -c '^FAIL' <<<"$verdicts")))
  skip=$((skip + $(grep -c '^SKIP' <<<"$verdicts")))
done
echo "drills: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
