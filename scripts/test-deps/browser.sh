# Sourced by scripts/test.sh: the real headless browser for tests/api/browser.rs.
# Debian's chromium (never a downloaded browser build) and npm playwright-core
# to drive it. Idempotent: a warm machine only checks two paths.

browser_deps_started=$SECONDS

if [ ! -x /usr/bin/chromium ]; then
  echo "test-deps: installing Debian chromium (once per machine)" >&2
  # shellcheck source=scripts/apt-install.sh
  source scripts/apt-install.sh
  apt_install chromium || return 1
fi

if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "test-deps: npm ci in tests/browser" >&2
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

export ATV_CHROMIUM=/usr/bin/chromium
echo "test-deps: browser ready in $((SECONDS - browser_deps_started)) s" >&2
unset browser_deps_started
