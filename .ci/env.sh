# Sourced by every build entry point (.ci/cargo, .ci/test, .ci/run).
#
# 1. Installs the system packages the build needs (libclang for RocksDB's bindgen) when missing.
# 2. Builds RocksDB once per machine and links it statically afterwards: librocksdb-sys compiled from
#    source costs ~12 minutes on 2 cores, and `cargo build`, `cargo test` and `cargo clippy` would
#    each pay it again. The archive lives outside the clone, keyed by the librocksdb-sys version and
#    feature set in Cargo.lock/Cargo.toml, so a fresh clone on the same machine reuses it and an empty
#    cache simply rebuilds it.
# 3. Exports ROCKSDB_LIB_DIR/ROCKSDB_STATIC for every cargo call (a call without them silently
#    recompiles RocksDB from source) and a shared CARGO_TARGET_DIR outside the clone.
set -euo pipefail

HERALD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERALD_CACHE="${HERALD_CACHE:-${HOME:-/root}/.cache/herald}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HERALD_CACHE/target}"
mkdir -p "$HERALD_CACHE"

herald_apt_install() {
  if ! dpkg -s "$@" >/dev/null 2>&1; then
    echo "[herald] installing system packages: $*" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

herald_apt_install libclang1-14 libclang-common-14-dev

herald_rocksdb_key() {
  {
    grep -A2 '^name = "librocksdb-sys"' "$HERALD_ROOT/Cargo.lock"
    grep '^rocksdb' "$HERALD_ROOT/Cargo.toml"
  } | sha256sum | cut -c1-16
}

ROCKSDB_CACHE="$HERALD_CACHE/rocksdb-$(herald_rocksdb_key)"
# Concurrent callers (parallel shells, CI) wait for one builder instead of racing it.
exec 9>"$HERALD_CACHE/rocksdb.lock"
flock 9
if [ ! -f "$ROCKSDB_CACHE/lib/librocksdb.a" ]; then
  echo "[herald] building RocksDB once for this machine into $ROCKSDB_CACHE (~12 min on 2 cores)" >&2
  rm -rf "$ROCKSDB_CACHE.build"
  (
    cd "$HERALD_ROOT"
    unset ROCKSDB_LIB_DIR ROCKSDB_STATIC
    CARGO_TARGET_DIR="$ROCKSDB_CACHE.build" cargo build --locked --release -q -p librocksdb-sys
  )
  archive=$(find "$ROCKSDB_CACHE.build/release/build" -name librocksdb.a -path '*librocksdb-sys-*/out/*' | head -n1)
  [ -n "$archive" ] || { echo "[herald] librocksdb.a not found after build" >&2; exit 1; }
  mkdir -p "$ROCKSDB_CACHE.tmp/lib"
  cp "$archive" "$ROCKSDB_CACHE.tmp/lib/"
  rm -rf "$ROCKSDB_CACHE" && mv "$ROCKSDB_CACHE.tmp" "$ROCKSDB_CACHE"
  rm -rf "$ROCKSDB_CACHE.build"
fi
flock -u 9
exec 9>&-
export ROCKSDB_LIB_DIR="$ROCKSDB_CACHE/lib"
export ROCKSDB_STATIC=1
