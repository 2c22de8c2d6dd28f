# Sourced by scripts/test.sh. The AWS Secrets Manager tests run against
# moto's server (the AWS emulator), installed once into its own virtualenv
# under $ATV_CI_CACHE; later runs find it there and install nothing.
# Exports ATV_MOTO_SERVER, which tests/aws reads.

moto_venv="$ATV_CI_CACHE/venv-moto"
# Run, not only found: a venv copied from another path keeps dead shebangs.
if ! "$moto_venv/bin/moto_server" --help >/dev/null 2>&1; then
  echo "test-deps: installing moto[server] into $moto_venv" >&2
  # A half-made venv from an interrupted run would be "found" next time.
  rm -rf "$moto_venv"
  if ! python3 -m venv "$moto_venv"; then
    echo "test-deps: FAILED to create a Python virtualenv (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  if ! "$moto_venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]>=5,<6'; then
    rm -rf "$moto_venv"
    echo "test-deps: FAILED to install moto[server] from PyPI; the Secrets Manager tests need it" >&2
    exit 1
  fi
fi
export ATV_MOTO_SERVER="$moto_venv/bin/moto_server"
