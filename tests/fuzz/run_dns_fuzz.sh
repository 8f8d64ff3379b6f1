#!/usr/bin/env bash
# Builds the DNS libFuzzer target with clang++ (ASan + UBSan) and runs a bounded number of
# iterations from the checked-in seed corpus. Usage: run_dns_fuzz.sh [BUILD_DIR] [RUNS] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/build/fuzz}"
runs="${2:-200000}"
seconds="${3:-60}"
CXX="${FUZZ_CXX:-clang++}"
command -v "$CXX" >/dev/null || { echo "run_dns_fuzz: $CXX not found" >&2; exit 1; }
mkdir -p "$out"
bin="$out/dns_fuzz"
srcs=("$here/dns_fuzz.cc" "$root/src/dns/dns_message.cc" "$root/src/dns/resolver_core.cc")
# Rebuild only when a source changed: the compile takes longer than many runs.
if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" "$root/src/dns" -newer "$bin" 2>/dev/null)" ]; then
  "$CXX" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/src" "${srcs[@]}" -o "$bin" \
    $(pkg-config --libs absl_statusor absl_status absl_strings absl_str_format)
fi
# Work on a copy so new inputs the fuzzer finds do not dirty the source tree.
corpus="$out/corpus"
rm -rf "$corpus"
cp -r "$here/dns_corpus" "$corpus"
exec "$bin" -runs="$runs" -max_total_time="$seconds" -max_len=4096 -timeout=5 \
  -artifact_prefix="$out/" "$corpus"
