#!/usr/bin/env bash
# Token endpoint answering after 4 s (past the 2.5 s exchange timeout) for
# FAULT_SECS (default 30), past the 20 s token's expiry. An exchange sent just
# before the endpoint recovers still waits out its timeout, so recovery is
# judged against token_endpoint.timeout_ms plus half a second, not 2 s.
set -euo pipefail
LIFETIME="${LIFETIME:-20}" FAULT_AT=2 RECOVERY_MS="${RECOVERY_MS:-exchange-timeout}" \
  exec "$(dirname "$0")/upstream-fault.sh" upstream-slow-4s '{"mode":"slow","ms":4000}' expire
