# Sourced by scripts/test.sh: PostgreSQL server binaries for the store tests
# (test-support/src/postgres.rs starts a throw-away cluster per test binary;
# nothing is started here). Debian's `postgresql` package, installed only
# when no /usr/lib/postgresql/*/bin/initdb exists. Exports ATV_TEST_PG_BIN.

postgres_bin_dir() {
  # The newest installed major version.
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V); do
    if [ -x "$dir/initdb" ]; then echo "$dir"; fi
  done | tail -n 1
  return 0
}

if [ -z "$(postgres_bin_dir)" ]; then
  echo "test-deps: installing Debian postgresql (once per machine)" >&2
  # shellcheck source=scripts/apt-install.sh
  source scripts/apt-install.sh
  apt_install postgresql || { echo "test-deps: the store tests need postgresql" >&2; return 1; }
fi

ATV_TEST_PG_BIN="$(postgres_bin_dir)"
if [ -z "$ATV_TEST_PG_BIN" ]; then
  echo "test-deps: no initdb under /usr/lib/postgresql/*/bin after installing postgresql" >&2
  return 1
fi
export ATV_TEST_PG_BIN
unset -f postgres_bin_dir
