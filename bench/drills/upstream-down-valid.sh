#!/usr/bin/env bash
# Token endpoint down (process stopped) for DOWN_SECS (default 60) across a
# refresh, while the cached token is still valid: 0 failed requests.
set -euo pipefail
DOWN_SECS="${DOWN_SECS:-60}"
# Smallest token lifetime whose refresh-ahead point and last usable moment
# (L - min(120, L/2) and L - min(30, L/4)) are DOWN_SECS + 10 s apart; the
# outage starts 3 s before the refresh is due.
read -r L AT < <(python3 -c "
d = $DOWN_SECS
L = next(L for L in range(8, 100000) if min(120, L/2) - min(30, L/4) >= d + 10)
print(L, max(1, int(L - min(120, L/2)) - 3))")
LIFETIME=$L FAULT_AT=$AT FAULT_SECS=$DOWN_SECS AFTER_SECS="${AFTER_SECS:-5}" \
  exec "$(dirname "$0")/upstream-fault.sh" upstream-down-while-valid down valid
