#!/usr/bin/env bash
# The test command: installs what is needed, builds once, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
BUILD_DIR="${BUILD_DIR:-build}"
# Unit and integration tests first (fast), then the end-to-end tests that start the binary.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 -LE e2e
# The cri runtime's e2e tests need containerd, the local registry and Warren's images. A machine
# that cannot run containers skips those tests (with the reason) instead of failing the run.
# Each script's last line on failure says why (its die message or the failing command's error).
cri_step() {
  local out
  if out=$("$@" 2>&1); then
    echo "$out"
    return 0
  fi
  echo "$out"
  export WARREN_CRI_UNAVAILABLE="$(basename "$1") failed: $(echo "$out" | tail -n 1)"
  return 1
}
if [ -z "${WARREN_CRI_UNAVAILABLE:-}" ]; then
  cri_step ./scripts/containers.sh && cri_step ./scripts/build-images.sh "$BUILD_DIR" ||
    echo "test.sh: container e2e tests will be skipped: $WARREN_CRI_UNAVAILABLE"
fi
ctest --test-dir "$BUILD_DIR" --output-on-failure -j1 -L e2e
