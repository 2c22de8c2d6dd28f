# Caller auth for the "auth on" rows: sourced by bench/run.sh.
# shellcheck shell=bash disable=SC2034  # sets variables for the scripts that source it
# Turns on [caller_auth] mode = "jwt" with a throw-away RSA key and mints a
# valid session token. BENCH_AUTH_ENV_FILE may name a file of NAME=value lines
# to use instead of the ATV_* settings below.

BENCH_AUTH_ALG="${BENCH_AUTH_ALG:-RS256}"
BENCH_AUTH_ISSUER="${BENCH_AUTH_ISSUER:-https://login.bench.invalid}"
BENCH_AUTH_AUDIENCE="${BENCH_AUTH_AUDIENCE:-astrada-token-vendor-bench}"

# auth_setup: sets AUTH_ENV (array of NAME=value) and AUTH_HEADER.
auth_setup() {
  local key="$BENCH_TMP/session-key.pem" pub="$BENCH_TMP/session-pub.pem"
  if [ "$BENCH_AUTH_ALG" = ES256 ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null
  fi
  openssl pkey -in "$key" -pubout -out "$pub" 2>/dev/null
  if [ -n "${BENCH_AUTH_ENV_FILE:-}" ]; then
    mapfile -t AUTH_ENV < <(sed "s|@PUBLIC_KEY_FILE@|$pub|; s|@PUBLIC_KEY_PEM@|$(awk 1 ORS='\\n' "$pub")|" "$BENCH_AUTH_ENV_FILE")
  else
    AUTH_ENV=(
      "ATV_CALLER_AUTH__MODE=jwt"
      "ATV_CALLER_AUTH__JWT__PUBLIC_KEY_PEM=$(cat "$pub")"
      "ATV_CALLER_AUTH__JWT__ISSUER=$BENCH_AUTH_ISSUER"
      "ATV_CALLER_AUTH__JWT__AUDIENCE=$BENCH_AUTH_AUDIENCE"
    )
  fi
  AUTH_HEADER="Bearer $("$BIN/session_jwt" --key "$key" --alg "$BENCH_AUTH_ALG" \
    --issuer "$BENCH_AUTH_ISSUER" --audience "$BENCH_AUTH_AUDIENCE")"
}
