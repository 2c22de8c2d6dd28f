#!/usr/bin/env bash
# Token endpoint down (process stopped) for DOWN_SECS (default 60) across a
# refresh, while the cached token is still valid: 0 failed requests.
set -euo pipefail
DOWN_SECS="${DOWN_SECS:-60}"
# LIFETIME=auto: the shortest token lifetime (and outage start) that puts the
# outage across a refresh and ends it while the token is still handed out.
LIFETIME=auto FAULT_SECS=$DOWN_SECS AFTER_SECS="${AFTER_SECS:-5}" \
  exec "$(dirname "$0")/upstream-fault.sh" upstream-down-while-valid down valid
