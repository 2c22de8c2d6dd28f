#!/usr/bin/env bash
# Token endpoint down for DOWN_SECS (default 60), far past the 20 s token's
# expiry: every request answered within 3 s, failures are 503 + Retry-After,
# and service is back within 2 s of the endpoint returning.
set -euo pipefail
LIFETIME="${LIFETIME:-20}" FAULT_AT=2 FAULT_SECS="${DOWN_SECS:-60}" \
  exec "$(dirname "$0")/upstream-fault.sh" upstream-down-past-expiry down expire
