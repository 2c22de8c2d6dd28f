# Secrets Manager (moto) helpers for the credential drills. Sourced.
# Uses the moto venv that scripts/test-deps/moto.sh installs (issue 3); the
# credential keys follow issue 3's design: credentials.source =
# "aws_secrets_manager" and credentials.secret_id holding a JSON secret of
# the same shape as the credentials file ({"api": {...}, "sdk": {...}}).

MOTO_VENV="${MOTO_VENV:-${ATV_CI_CACHE:-$BENCH_ROOT/.ci-cache}/venv-moto}"
SECRET_ID="${SECRET_ID:-atv-bench/credentials}"

# moto_available: installs moto through the project's own test-deps script
# when there is one; returns 1 with MOTO_SKIP_REASON otherwise.
moto_available() {
  if [ ! -x "$MOTO_VENV/bin/moto_server" ] && [ -f "$BENCH_ROOT/scripts/test-deps/moto.sh" ]; then
    # shellcheck source=/dev/null
    (cd "$BENCH_ROOT" && export ATV_CI_CACHE="${ATV_CI_CACHE:-$BENCH_ROOT/.ci-cache}" &&
      source scripts/test-deps/moto.sh) >&2 || true
  fi
  if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    MOTO_SKIP_REASON="moto is not installed ($MOTO_VENV; scripts/test-deps/moto.sh comes with issue 3)"
    return 1
  fi
  if ! "$VENDOR" --help 2>/dev/null | grep -q 'aws_secrets_manager'; then
    MOTO_SKIP_REASON="this build has no aws_secrets_manager credential source (issue 3 not merged)"
    return 1
  fi
}

# start_moto PORT: sets MOTO_PID.
start_moto() {
  start_bg "moto-$1" "${ON_LOAD_CPU[@]}" "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$1"
  MOTO_PID=$LAST_PID
  wait_http_ok "http://127.0.0.1:$1/moto-api/" 20000
}

# put_secret PORT API_SECRET SDK_SECRET: creates the secret or adds a version.
put_secret() {
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
    "$MOTO_VENV/bin/python" - "$1" "$SECRET_ID" "$API_ID" "$2" "$SDK_ID" "$3" <<'PY'
import json, sys, boto3
port, sid, api_id, api_secret, sdk_id, sdk_secret = sys.argv[1:]
sm = boto3.client("secretsmanager", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
value = json.dumps({"api": {"client_id": api_id, "client_secret": api_secret},
                    "sdk": {"client_id": sdk_id, "client_secret": sdk_secret}})
try:
    sm.put_secret_value(SecretId=sid, SecretString=value)
except sm.exceptions.ResourceNotFoundException:
    sm.create_secret(Name=sid, SecretString=value)
PY
}

# The vendor's settings for credentials from moto at PORT.
moto_vendor_env() {
  VENDOR_EXTRA_ENV=(
    "ATV_CREDENTIALS__SOURCE=aws_secrets_manager"
    "ATV_CREDENTIALS__SECRET_ID=$SECRET_ID"
    "ATV_CREDENTIALS__RELOAD_INTERVAL_SECS=${RELOAD_SECS:-2}"
    "AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$1"
    "AWS_ACCESS_KEY_ID=test" "AWS_SECRET_ACCESS_KEY=test" "AWS_REGION=us-east-1"
    "AWS_EC2_METADATA_DISABLED=true"
  )
}

reloads() { metric "$1" atv_credential_reloads_total "outcome=\"$2\""; }
