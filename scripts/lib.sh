# Shared by scripts/quickstart, scripts/test and scripts/bench. Source it; do not run it.
#
# Installs the local stack's servers once, with pinned versions, into a cache outside the
# checkout (KOS_CACHE, default ~/.cache/kafka-oss-sink), and reuses them afterwards:
#   - tansu 0.6.0 (Kafka-API broker; features dynostore,libsql), about 10 to 40 minutes to build
#   - s3s-fs 0.14.1 (S3-API server on a directory; checks SigV4 signatures)
# and, for the monitoring test, Debian's `prometheus` package (install_prometheus), and for the
# format tests a Python venv with pyarrow and zstandard (install_python_readers).

set -euo pipefail

KOS_CACHE="${KOS_CACHE:-$HOME/.cache/kafka-oss-sink}"
TANSU_VERSION=0.6.0
S3S_FS_VERSION=0.14.1
TANSU_BIN="${TANSU_BIN:-$KOS_CACHE/tansu-$TANSU_VERSION/bin/tansu}"
S3S_FS_BIN="${S3S_FS_BIN:-$KOS_CACHE/s3s-fs-$S3S_FS_VERSION/bin/s3s-fs}"
export TANSU_BIN S3S_FS_BIN

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# install_stack: builds whichever server is missing from the cache. Concurrent callers wait on a lock.
install_stack() {
  mkdir -p "$KOS_CACHE"
  (
    flock 9
    if [ ! -x "$S3S_FS_BIN" ]; then
      log "installing s3s-fs $S3S_FS_VERSION into $KOS_CACHE (once)"
      cargo install s3s-fs --version "$S3S_FS_VERSION" --locked --features binary \
        --root "$KOS_CACHE/s3s-fs-$S3S_FS_VERSION"
    fi
    if [ ! -x "$TANSU_BIN" ]; then
      log "installing tansu $TANSU_VERSION into $KOS_CACHE (once; this takes a while on 2 cores)"
      cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
        --root "$KOS_CACHE/tansu-$TANSU_VERSION"
    fi
  ) 9>"$KOS_CACHE/install.lock"
}

# install_prometheus: the monitoring end-to-end test scrapes the connector with a real Prometheus
# (Debian's package, /usr/bin/prometheus). Installed with apt-get when missing; PROMETHEUS_BIN
# points the tests at another binary.
install_prometheus() {
  if [ -n "${PROMETHEUS_BIN:-}" ] || command -v prometheus >/dev/null 2>&1; then
    return 0
  fi
  log "installing Debian's prometheus package (once)"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
}

# install_python_readers: the format tests (tests/formats.rs) read every object back with
# scripts/read-objects.py, under a venv in the cache holding pyarrow and zstandard (from PyPI).
# Without python3 the tests say they are skipped; KOS_PYTHON points them at another Python.
KOS_PYTHON="${KOS_PYTHON:-$KOS_CACHE/py-readers/bin/python}"
export KOS_PYTHON
install_python_readers() {
  if "$KOS_PYTHON" -c 'import pyarrow, zstandard' >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v python3 >/dev/null 2>&1; then
    log "no python3: the format tests will be skipped"
    return 0
  fi
  mkdir -p "$KOS_CACHE"
  (
    flock 9
    log "installing pyarrow and zstandard into $KOS_CACHE/py-readers (once)"
    python3 -m venv "$KOS_CACHE/py-readers"
    "$KOS_CACHE/py-readers/bin/pip" install -q 'pyarrow>=15' 'zstandard>=0.22'
  ) 9>"$KOS_CACHE/install.lock"
}

# wait_port HOST PORT SECONDS: waits until something accepts connections.
wait_port() {
  local host=$1 port=$2 deadline=$((SECONDS + $3))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "nothing listens on $host:$port after $3 s" >&2
      return 1
    fi
    sleep 0.1
  done
}
