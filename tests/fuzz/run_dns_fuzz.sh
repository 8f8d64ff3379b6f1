#!/usr/bin/env bash
# Builds the DNS libFuzzer target with clang++ (ASan + UBSan) and runs a bounded number of
# iterations from the checked-in seed corpus. Usage: run_dns_fuzz.sh [BUILD_DIR] [RUNS] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/fuzz_common.sh"
out="${1:-$fuzz_root/build/fuzz}"
runs="${2:-200000}"
seconds="${3:-60}"
bin="$out/dns_fuzz"
fuzz_build "$bin" "$here/dns_fuzz.cc $fuzz_root/src/dns/dns_message.cc $fuzz_root/src/dns/resolver_core.cc" \
  "$fuzz_root/src/dns" -- \
  $(pkg-config --libs absl_statusor absl_status absl_strings absl_str_format)
fuzz_run "$bin" "$here/dns_corpus" "$out" "$runs" "$seconds" 4096
