#!/usr/bin/env bash
# Builds the proxy's HTTP libFuzzer target with clang++ (ASan + UBSan) and runs it for a bounded
# time from the checked-in seed corpus. Usage: run_proxy_http_fuzz.sh [BUILD_DIR] [RUNS] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/fuzz_common.sh"
out="${1:-$fuzz_root/build/fuzz}"
runs="${2:-2000000}"
seconds="${3:-50}"
bin="$out/proxy_http_fuzz"
# Boost 1.74 detects co_await support in clang only with libc++'s <experimental/coroutine>; the
# standard <coroutine> of libstdc++ works. Clang 14's -fsanitize=function cannot assemble
# coroutines ("Cannot represent a difference across sections"); the other UBSan checks stay.
# Boost's assertions stay on, through a handler in the target that skips one wrong assertion.
fuzz_build "$bin" "$here/proxy_http_fuzz.cc $fuzz_root/src/proxy/http_relay.cc" \
  "$fuzz_root/src/proxy/http_relay.h $fuzz_root/src/http/safe_read.h" \
  -DBOOST_ASIO_HAS_CO_AWAIT=1 -DBOOST_ASIO_HAS_STD_COROUTINE=1 -DBOOST_ENABLE_ASSERT_HANDLER \
  -fno-sanitize=function -- -pthread \
  $(pkg-config --libs absl_strings)
fuzz_run "$bin" "$here/proxy_http_corpus" "$out" "$runs" "$seconds" 200000
