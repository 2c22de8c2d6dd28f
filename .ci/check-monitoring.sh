#!/usr/bin/env bash
# Checks the monitoring component (deploy/components/monitoring) with the real
# tools, as CI does:
#   promtool check rules   alerts.yaml parses and every rule is valid
#   promtool test rules    tests/alerts_test.yaml: each alert fires on series
#                          that should trigger it and stays silent on a near miss
#   drift                  prometheusrule.yaml is generated from alerts.yaml
#   runbooks               every runbook_url points at a heading of
#                          docs/operations/runbooks.md
#   live                   the dev-mode service (debug build) under a short
#                          load, scraped every second by a real Prometheus
#                          loading alerts.yaml; every dashboard panel query
#                          and every alert rule is checked against it
#                          (.ci/monitoring/live_check.py says which panel
#                          queries must return series and which only parse)
# The rendered manifests (ServiceMonitor, PrometheusRule, dashboard
# ConfigMap) are validated by .ci/check-manifests.sh with the other overlays.
#
# Needs promtool and prometheus (Debian's `prometheus`, installed here when
# missing) and python3. Reuses target/debug/astrada-token-vendor (the test
# suite builds it) and builds it only when missing. Everything listens on
# 127.0.0.1 on free ports and is stopped on exit.
set -Eeuo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

component=deploy/components/monitoring
binary=target/debug/astrada-token-vendor

log() { printf '\n==> %s\n' "$*"; }
fail() { printf '\ncheck-monitoring: FAILED: %s\n' "$*" >&2; exit 1; }
on_error() {
    local rc=$?
    printf '\ncheck-monitoring: FAILED (exit %s) at line %s: %s\n' "$rc" "$1" "$BASH_COMMAND" >&2
}
trap 'on_error $LINENO' ERR

work=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    log "installing Debian prometheus (promtool and the server)"
    # shellcheck source=scripts/apt-install.sh
    source scripts/apt-install.sh
    apt_install prometheus || fail "could not install Debian's prometheus package"
fi
log "versions"
promtool --version 2>&1 | head -n 1
prometheus --version 2>&1 | head -n 1

log "promtool check rules"
promtool check rules "$component/alerts.yaml"

log "promtool test rules"
promtool test rules "$component"/tests/*.yaml

log "PrometheusRule generated from alerts.yaml"
python3 .ci/monitoring/prometheusrule.py --check

log "runbook links"
python3 - "$component/alerts.yaml" docs/operations/runbooks.md <<'PY'
import re, sys
rules = open(sys.argv[1], encoding="utf-8").read()
runbooks = open(sys.argv[2], encoding="utf-8").read()
# GitHub's anchor of a heading: lower case, spaces to '-', other punctuation dropped.
anchors = {
    re.sub(r"[^a-z0-9_ -]", "", h.strip().lower()).replace(" ", "-")
    for h in re.findall(r"^#+ (.+)$", runbooks, re.M)
}
alerts = re.findall(r"^\s*- alert: (\S+)$", rules, re.M)
links = re.findall(r"runbook_url: \S+/docs/operations/runbooks\.md#(\S+)$", rules, re.M)
bad = []
if len(links) != len(alerts):
    bad.append(f"{len(alerts)} alerts but {len(links)} runbook links into runbooks.md")
bad += [f"#{a} has no heading in {sys.argv[2]}" for a in links if a not in anchors]
bad += [f"{a} does not link its own runbook heading" for a in alerts if a.lower() not in links]
if bad:
    sys.exit("\n".join(bad))
print(f"{len(alerts)} alerts, each with a runbook heading")
PY

# --- live: the service, a short load, a real Prometheus --------------------

if [[ ! -x "$binary" ]]; then
    log "building $binary (missing)"
    cargo build --locked --bin astrada-token-vendor
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
public_port=$(free_port)
internal_port=$(free_port)
prom_port=$(free_port)
public="http://127.0.0.1:$public_port"
internal="http://127.0.0.1:$internal_port"
prom="http://127.0.0.1:$prom_port"

log "service: $binary dev (public $public_port, internal $internal_port)"
ATV_SERVER__PUBLIC_ADDR="127.0.0.1:$public_port" \
ATV_SERVER__INTERNAL_ADDR="127.0.0.1:$internal_port" \
    "$binary" dev >"$work/service.log" 2>&1 &
pids+=($!)

# job as under the ServiceMonitor (the internal Service's name), so AtvMetricsDown
# matches; a namespace label as the Prometheus Operator adds one.
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $repo_root/$component/alerts.yaml
scrape_configs:
  - job_name: astrada-token-vendor-internal
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$internal_port"]
        labels:
          namespace: monitoring-ci
EOF
log "prometheus on 127.0.0.1:$prom_port"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)

show_logs() {
    echo "--- service log (last 30 lines)" >&2
    tail -n 30 "$work/service.log" >&2 || true
    echo "--- prometheus log (last 30 lines)" >&2
    tail -n 30 "$work/prometheus.log" >&2 || true
}

log "load"
python3 .ci/monitoring/live_check.py load "$public" "$internal" || { show_logs; fail "load"; }
curl_metrics() {
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}
curl_metrics "$internal/metrics" >"$work/metrics.txt"

log "waiting for Prometheus to have scraped the load"
# Three scrapes after the load: rate() over them has two points.
ready_query='count_over_time(atv_astra_refreshes_total{outcome="ok"}[1m]) >= 3'
for _ in $(seq 1 60); do
    if curl_metrics "$prom/api/v1/query?query=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$ready_query")" 2>/dev/null |
        grep -q '"result":\[{'; then
        ready=1
        break
    fi
    sleep 0.5
done
[[ -n "${ready:-}" ]] || { show_logs; fail "Prometheus did not scrape the service's Astra series within 30 s"; }

log "dashboard queries and alert rules against Prometheus"
python3 .ci/monitoring/live_check.py queries "$prom" "$work/metrics.txt" "$component/dashboard.json" ||
    { show_logs; fail "dashboard queries or alert rules"; }

echo
echo "check-monitoring: all passed"
