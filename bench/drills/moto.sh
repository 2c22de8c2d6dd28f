# Secrets Manager (moto) helpers for the credential drills. Sourced.
# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it
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
    MOTO_SKIP_REASON="moto is not installed ($MOTO_VENV; scripts/test-deps/moto.sh installs it)"
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
    AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$1" AWS_EC2_METADATA_DISABLED=true \
    "$PROBE" put-secret --secret-id "$SECRET_ID" --api "$API_ID:$2" --sdk "$SDK_ID:$3"
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

# start_moto_stack [fake args]: moto on MOTO holding the current secrets,
# then a fake upstream (20 s tokens) and the service reading its credentials
# from moto (see start_stack).
start_moto_stack() {
  MOTO=$(free_port)
  start_moto "$MOTO"
  put_secret "$MOTO" "$API_SECRET" "$SDK_SECRET"
  moto_vendor_env "$MOTO"
  start_stack 20 80 "$@"
}

reloads() { metric "$1" atv_credential_reloads_total "outcome=\"$2\""; }
