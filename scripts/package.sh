#!/usr/bin/env bash
# Builds the Debian package: ./build/package/warren_<version>_<arch>.deb with the binaries,
# the systemd unit and the default config (docs/operations.md, "Install and upgrade").
#   ./scripts/package.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
OUT="${1:-$BUILD_DIR/package}"
./scripts/setup.sh
./scripts/build.sh warren warren-shim warren-testapp
# The package installs under /usr with its config in /etc/warren. Only the install rules
# depend on the prefix: this reconfigure recompiles nothing.
cmake -S . -B "$BUILD_DIR" -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
mkdir -p "$OUT"
cpack --config "$BUILD_DIR/CPackConfig.cmake" -B "$OUT" >"$OUT/cpack.log" 2>&1 || {
  cat "$OUT/cpack.log"
  exit 1
}
rm -rf "$OUT/_CPack_Packages"
ls "$OUT"/*.deb
