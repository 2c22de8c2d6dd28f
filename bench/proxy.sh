#!/usr/bin/env bash
# The proxy's cost (issue 21), in one run on the same pinned cores:
#   direct   wrk -> upstream (the floor);
#   nginx    wrk -> nginx, injecting a static Authorization header -> upstream
#            (the anchor: Debian's nginx, one worker, keep-alive to the upstream);
#   vendor   wrk -> this service's /astrada/api/{path}, injecting the cached
#            Astrada API token -> upstream.
# The upstream is the bare actix-web ceiling (bench/runner/src/bin/ceiling.rs), so what is
# added above `direct` is the proxy's own work. The proxy under test runs
# alone on SERVER_CPU; wrk and the upstream share LOAD_CPU in every row, so
# the rows differ only by the proxy. Writes a Markdown table (throughput, and
# p50/p99 with what each adds over `direct`) to $BENCH_RESULTS_DIR/proxy.md,
# which `atv-bench report` puts into bench/RESULTS.md.
#
#   cargo run --release -p atv-bench -- run proxy     # 10 s per row at 1, 64, 256 connections
#   BENCH_SECS=3 BENCH_NO_BUILD=1 bench/proxy.sh
#
# Needs wrk and nginx (apt-get install -y wrk nginx).
source "$(dirname "$0")/lib.sh"

BENCH_SECS="${BENCH_SECS:-10}"
BENCH_CONNS="${BENCH_CONNS:-1 64 256}"
API_PATH="/v1/accounts/acc_1/transactions?limit=20"
RESULTS_DIR="${BENCH_RESULTS_DIR:-$BENCH_ROOT/bench/results}"
mkdir -p "$RESULTS_DIR"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y $tool" >&2; exit 2; }
done
build_release
raise_nofile 30000

# The upstream: answers every path with a token-sized JSON body.
UPSTREAM=$(free_port)
start_bg upstream "${ON_LOAD_CPU[@]}" "$BIN/ceiling" --addr "127.0.0.1:$UPSTREAM" --workers 1
wait_http_ok "http://127.0.0.1:$UPSTREAM/"

# nginx as the anchor, set up the way PEERS.md describes a fair comparison.
NGINX=$(free_port)
mkdir -p "$BENCH_TMP/nginx"
cat >"$BENCH_TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
error_log $BENCH_TMP/nginx/error.log warn;
pid $BENCH_TMP/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream api { server 127.0.0.1:$UPSTREAM; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX;
    location / {
      proxy_pass http://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer static-bench-token-not-real";
    }
  }
}
EOF
start_bg nginx "${ON_SERVER_CPU[@]}" nginx -c "$BENCH_TMP/nginx/nginx.conf" -p "$BENCH_TMP/nginx" -g 'daemon off;'
wait_http_ok "http://127.0.0.1:$NGINX/"

# The service: its Astrada API proxy points at the upstream; the token comes
# from the fake token endpoint once and is then cached.
VENDOR_EXTRA_ENV=("ATV_PROXY__ASTRADA_API_URL=http://127.0.0.1:$UPSTREAM")
start_stack 3600 0
wait_http_ok "http://127.0.0.1:$INT/astrada/api/v1/warm-up"

declare -A TARGETS=(
  [direct]="http://127.0.0.1:$UPSTREAM$API_PATH"
  [nginx]="http://127.0.0.1:$NGINX$API_PATH"
  [vendor]="http://127.0.0.1:$INT/astrada/api$API_PATH"
)

# measure TARGET CONNS: "rps p50_us p99_us non_2xx" of one wrk run after a warm-up.
measure() {
  local url="${TARGETS[$1]}" json
  "${ON_LOAD_CPU[@]}" wrk -t1 -c"$2" -d2s "$url" >/dev/null 2>&1 || true
  json=$("${ON_LOAD_CPU[@]}" wrk -t1 -c"$2" -d"${BENCH_SECS}s" --timeout 10s --latency \
    -s "$BENCH_ROOT/bench/wrk-report.lua" "$url" | sed -n 's/^WRKJSON //p')
  log "$1 c=$2: $json"
  sed -E 's/.*"requests":([0-9]+),"duration_us":([0-9]+).*"non_2xx":([0-9]+).*"p50_us":([0-9]+),"p99_us":([0-9]+).*/\1 \2 \3 \4 \5/' <<<"$json" |
    awk '{ printf "%.0f %d %d %d\n", $1 * 1e6 / $2, $4, $5, $3 }'
}

ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", (a - b) / 1000 }'; }

table() {
echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') at commit $(git -C "$BENCH_ROOT" rev-parse --short HEAD) on $(nproc) cores; load average before the run: $LOAD_BEFORE (compare rows within one run)."
echo
echo "| connections | target | requests/s | p50 ms (added) | p99 ms (added) | non-2xx |"
echo "|---:|---|---:|---:|---:|---:|"
for conns in $BENCH_CONNS; do
  read -r d_rps d_p50 d_p99 d_bad < <(measure direct "$conns")
  echo "| $conns | direct (floor) | $d_rps | $(ms "$d_p50") | $(ms "$d_p99") | $d_bad |"
  for target in nginx vendor; do
    read -r rps p50 p99 bad < <(measure "$target" "$conns")
    echo "| $conns | $target | $rps | $(ms "$p50") ($(added "$p50" "$d_p50")) | $(ms "$p99") ($(added "$p99" "$d_p99")) | $bad |"
  done
done
}
table | tee "$RESULTS_DIR/proxy.md"
