#!/usr/bin/env bash
# Token endpoint answering 503 for FAULT_SECS (default 30).
set -euo pipefail
LIFETIME="${LIFETIME:-20}" FAULT_AT=2 exec "$(dirname "$0")/upstream-fault.sh" upstream-503 '{"mode":"unavailable"}' expire
