#!/usr/bin/env bash
# invalid_client storm: every exchange refused with 401 invalid_client for
# FAULT_SECS (default 30). The report shows how many upstream requests the
# service made during the storm (backoff keeps it from hammering).
set -euo pipefail
LIFETIME=20 FAULT_AT=2 exec "$(dirname "$0")/upstream-fault.sh" upstream-invalid-client-storm '{"mode":"invalid_client"}' expire
