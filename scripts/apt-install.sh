# Sourced by scripts/test-deps/*.sh: apt_install PKG... installs Debian
# packages as root, or through sudo, with one retry (an interrupted unpack,
# seen once here, is repaired by a second run). Returns 1 with a message
# naming the packages when they cannot be installed.
apt_install() {
  local as_root=() attempt
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "test-deps: need root or sudo to install $*" >&2
      return 1
    fi
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update -qq
  for attempt in 1 2; do
    if "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
      return 0
    fi
  done
  echo "test-deps: FAILED to install $* (attempts: $attempt)" >&2
  return 1
}
