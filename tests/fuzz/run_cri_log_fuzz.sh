#!/usr/bin/env bash
# Builds the CRI log decoder libFuzzer target with clang++ (ASan + UBSan) and runs it for a
# bounded time from the checked-in seed corpus. Usage: run_cri_log_fuzz.sh [BUILD_DIR] [RUNS] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/build/fuzz}"
runs="${2:-2000000}"
seconds="${3:-30}"
CXX="${FUZZ_CXX:-clang++}"
command -v "$CXX" >/dev/null || { echo "run_cri_log_fuzz: $CXX not found" >&2; exit 1; }
mkdir -p "$out"
bin="$out/cri_log_fuzz"
srcs=("$here/cri_log_fuzz.cc" "$root/src/worker/cri_log.cc")
if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" "$root/src/worker/cri_log.h" -newer "$bin" 2>/dev/null)" ]; then
  "$CXX" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/src" "${srcs[@]}" -o "$bin"
fi
# Work on a copy so new inputs the fuzzer finds do not dirty the source tree.
corpus="$out/cri_log_corpus"
rm -rf "$corpus"
cp -r "$here/cri_log_corpus" "$corpus"
exec "$bin" -runs="$runs" -max_total_time="$seconds" -max_len=8192 -timeout=5 \
  -artifact_prefix="$out/cri_log-" "$corpus"
