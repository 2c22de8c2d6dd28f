#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need
# (once; later runs reuse it), then runs every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

export ATV_CI_CACHE="${ATV_CI_CACHE:-$PWD/.ci-cache}"
mkdir -p "$ATV_CI_CACHE"

for deps in scripts/test-deps/*.sh; do
  [ -e "$deps" ] || continue
  # shellcheck source=/dev/null
  source "$deps"
done

cargo test --locked "$@"
