#!/usr/bin/env bash
# Dependency policy (deny.toml) with cargo-deny: banned crates (h2 0.3 among
# them), licences, and sources (crates.io only). These checks are offline.
#
# Advisories (RustSec) need the advisory database from GitHub, which this
# check does not assume is reachable; set ATV_DENY_ADVISORIES=1 where it is
# (e.g. a nightly CI job) to run `cargo deny check advisories` too.
#
# cargo-deny is installed with `cargo install --locked` into
# ${ATV_CI_CACHE:-.ci-cache}/cargo-deny on the first run (needs crates.io
# then) and reused afterwards; a cargo-deny on PATH is used if present.
set -Eeuo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

# Major pinned, like the other tools: a new major may change the config schema.
readonly DENY_VERSION='0.18'

cache_dir=${ATV_CI_CACHE:-.ci-cache}
mkdir -p "$cache_dir"
cache_dir=$(cd "$cache_dir" && pwd)
root="$cache_dir/cargo-deny"

log() { printf '\n==> %s\n' "$*"; }
fail() { printf '\ncheck-deny: FAILED: %s\n' "$*" >&2; exit 1; }

if command -v cargo-deny >/dev/null 2>&1; then
    deny=$(command -v cargo-deny)
elif [[ -x "$root/bin/cargo-deny" ]]; then
    deny="$root/bin/cargo-deny"
else
    log "installing cargo-deny $DENY_VERSION into $root"
    # Unoptimised: checking one lock file takes seconds either way, while the
    # optimised build took about 10 of a cold CI's 30 minutes on 2 cores.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo install --locked --root "$root" --version "~$DENY_VERSION" cargo-deny ||
        fail "cargo install cargo-deny failed (it needs crates.io on the first run)"
    deny="$root/bin/cargo-deny"
fi
# .ci/run installs the tool ahead, while the Rust steps compile.
[[ "${ATV_CI_INSTALL_ONLY:-0}" == 1 ]] && exit 0
log "$("$deny" --version)"

checks=(bans licenses sources)
fetch=(--disable-fetch)
if [[ "${ATV_DENY_ADVISORIES:-0}" == 1 ]]; then
    checks+=(advisories)
    fetch=()
else
    echo "advisories: skipped (the RustSec database is fetched from GitHub, which this check"
    echo "does not assume is reachable; set ATV_DENY_ADVISORIES=1 to run them)"
fi

"$deny" --locked check "${fetch[@]}" "${checks[@]}" || fail "dependency policy violated; see above"
echo "check-deny: ${checks[*]} passed"
