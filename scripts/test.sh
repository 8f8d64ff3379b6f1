#!/usr/bin/env bash
# The test command: installs what is needed, builds once, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
BUILD_DIR="${BUILD_DIR:-build}"
# Unit and integration tests first (fast), then the end-to-end tests that start the binary.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 -LE e2e
ctest --test-dir "$BUILD_DIR" --output-on-failure -j1 -L e2e
