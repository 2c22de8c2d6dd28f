# Sourced by scripts/test.sh: PostgreSQL server binaries for the store tests
# (tests/support/postgres.rs starts a throw-away cluster per test binary;
# nothing is started here). Debian's `postgresql` package, installed only
# when no /usr/lib/postgresql/*/bin/initdb exists. Exports ATV_TEST_PG_BIN.

postgres_bin_dir() {
  # The newest installed major version.
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n); do
    if [ -x "$dir/initdb" ]; then echo "$dir"; fi
  done | tail -n 1
  return 0
}

if [ -z "$(postgres_bin_dir)" ]; then
  echo "test-deps: installing Debian postgresql (once per machine)" >&2
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq
  if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
    echo "test-deps: FAILED to install postgresql; the store tests need it" >&2
    return 1
  fi
  unset as_root
fi

ATV_TEST_PG_BIN="$(postgres_bin_dir)"
if [ -z "$ATV_TEST_PG_BIN" ]; then
  echo "test-deps: no initdb under /usr/lib/postgresql/*/bin after installing postgresql" >&2
  return 1
fi
export ATV_TEST_PG_BIN
unset -f postgres_bin_dir
