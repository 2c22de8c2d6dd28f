# Sourced by scripts/test.sh: the real headless browser for tests/browser.rs.
# Debian's chromium (never a downloaded browser build) and npm playwright-core
# to drive it. Idempotent: a warm machine only checks two paths.

browser_deps_started=$SECONDS

if [ ! -x /usr/bin/chromium ]; then
  echo "test-deps: installing Debian chromium (once per machine)" >&2
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  # One retry: an interrupted unpack (seen once here) is repaired by a second run.
  for attempt in 1 2; do
    if "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
      break
    fi
    [ "$attempt" -eq 2 ] && { echo "test-deps: cannot install chromium" >&2; return 1; }
  done
  unset attempt
  unset as_root
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "test-deps: npm ci in tests/browser" >&2
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

export ATV_CHROMIUM=/usr/bin/chromium
echo "test-deps: browser ready in $((SECONDS - browser_deps_started)) s" >&2
unset browser_deps_started
