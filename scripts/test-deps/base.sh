# Sourced by scripts/test.sh, first: what the other installers and the CI
# checks take for granted on a fresh Debian machine: curl, and Python's venv
# module (Debian ships it apart from python3).
# shellcheck source=scripts/apt-install.sh
source scripts/apt-install.sh

base_missing=()
command -v curl >/dev/null || base_missing+=(curl)
python3 -c 'import ensurepip' 2>/dev/null || base_missing+=(python3-venv)
if [ "${#base_missing[@]}" -gt 0 ]; then
  echo "test-deps: installing ${base_missing[*]} (once per machine)" >&2
  apt_install "${base_missing[@]}" || return 1
fi
unset base_missing
