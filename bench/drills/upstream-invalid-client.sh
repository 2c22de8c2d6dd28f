#!/usr/bin/env bash
# invalid_client storm: every exchange refused with 401 invalid_client for
# FAULT_SECS (default 30). The report shows how many upstream requests the
# service made during the storm (backoff keeps it from hammering). Rejected
# credentials keep the full backoff (a real fix is a rotation, which ends the
# backoff at once), so recovery after the storm is allowed up to
# cache.backoff_max_ms (30 s by default) here, not 2 s. The load goes on for
# AFTER_SECS (35) after the storm, past that limit: with the 10 s the other
# drills use, a retry drawn late in the backoff came after the load had
# stopped and was judged as no recovery at all.
set -euo pipefail
LIFETIME="${LIFETIME:-20}" FAULT_AT=2 RECOVERY_MS="${RECOVERY_MS:-backoff-max}" \
  AFTER_SECS="${AFTER_SECS:-35}" exec "$(dirname "$0")/upstream-fault.sh" upstream-invalid-client-storm '{"mode":"invalid_client"}' expire
