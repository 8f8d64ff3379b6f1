#!/usr/bin/env bash
# Builds the CRI log decoder libFuzzer target with clang++ (ASan + UBSan) and runs it for a
# bounded time from the checked-in seed corpus. Usage: run_cri_log_fuzz.sh [BUILD_DIR] [RUNS] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/fuzz_common.sh"
out="${1:-$fuzz_root/build/fuzz}"
runs="${2:-2000000}"
seconds="${3:-30}"
bin="$out/cri_log_fuzz"
fuzz_build "$bin" "$here/cri_log_fuzz.cc $fuzz_root/src/worker/cri_log.cc" \
  "$fuzz_root/src/worker/cri_log.h"
fuzz_run "$bin" "$here/cri_log_corpus" "$out" "$runs" "$seconds" 8192
