#!/usr/bin/env bash
# Token endpoint answering 200 with a non-JSON body for FAULT_SECS (default 30).
set -euo pipefail
LIFETIME="${LIFETIME:-20}" FAULT_AT=2 exec "$(dirname "$0")/upstream-fault.sh" upstream-garbage '{"mode":"garbage"}' expire
