#!/usr/bin/env bash
# Fuzzes the running dev-mode service with schemathesis against openapi.yaml:
# no 5xx, and every response (status, headers, body) must match the spec.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${ATV_CI_CACHE:-$PWD/.ci-cache}"
venv="$cache/venv-schemathesis"
# A venv that no longer runs (moved, or its Python replaced) is rebuilt.
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi

# .ci/run installs the tool ahead, while the Rust steps compile.
[ "${ATV_CI_INSTALL_ONLY:-0}" = 1 ] && exit 0

cargo build --locked --quiet --bin astrada-token-vendor
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
public=$(free_port)
internal=$(free_port)
log=$(mktemp)
ATV_SERVER__PUBLIC_ADDR="127.0.0.1:$public" ATV_SERVER__INTERNAL_ADDR="127.0.0.1:$internal" \
  target/debug/astrada-token-vendor dev >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$public/readyz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "dev mode exited early" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$public/readyz" >/dev/null || { cat "$log"; echo "dev mode never became ready" >&2; exit 1; }

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method
for listener in public internal; do
  port=$public
  [ "$listener" = internal ] && port=$internal
  echo "schemathesis: $listener listener on port $port"
  "$venv/bin/schemathesis" run openapi.yaml \
    --url "http://127.0.0.1:$port" \
    --include-tag "$listener" \
    --checks "$checks" \
    -n 50 --seed 1 --no-color
done
