#!/usr/bin/env bash
# Builds the service-spec libFuzzer target (YAML/JSON decoding + validation, what `warren apply
# -f` runs) with clang++ (ASan + UBSan) and runs it for a bounded time from the checked-in seed
# corpus. Usage: run_spec_fuzz.sh [OUT_DIR] [RUNS] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/build/fuzz}"
runs="${2:-2000000}"
seconds="${3:-45}"
CXX="${FUZZ_CXX:-clang++}"
command -v "$CXX" >/dev/null || { echo "run_spec_fuzz: $CXX not found" >&2; exit 1; }
mkdir -p "$out/spec_gen"
bin="$out/spec_fuzz"
proto="$root/proto/warren/v1/objects.proto"
# objects.proto imports ingress.proto, which imports security.proto.
protos=("$proto" "$root/proto/warren/v1/ingress.proto" "$root/proto/warren/v1/security.proto")
srcs=("$here/spec_fuzz.cc" "$root/src/common/spec.cc" "$root/src/common/enum_names.cc")
if [ ! -x "$bin" ] || [ -n "$(find "${srcs[@]}" "$root/src/common/limits.h" "$root/src/common/spec.h" \
  "$root/src/common/enum_names.h" "${protos[@]}" -newer "$bin" 2>/dev/null)" ]; then
  protoc -I"$root/proto" --cpp_out="$out/spec_gen" "${protos[@]}"
  # Only the fuzzed code is instrumented for coverage; the generated messages are not.
  gen_objs=()
  for p in objects ingress security; do
    "$CXX" -std=c++20 -O1 -g -fsanitize=address,undefined -c "$out/spec_gen/warren/v1/$p.pb.cc" \
      -I"$out/spec_gen" -o "$out/spec_$p.o" -w
    gen_objs+=("$out/spec_$p.o")
  done
  "$CXX" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I"$root/src" -I"$out/spec_gen" "${srcs[@]}" "${gen_objs[@]}" -o "$bin" \
    $(pkg-config --libs protobuf yaml-cpp absl_statusor absl_status absl_strings absl_str_format \
      absl_time)
fi
# Work on a copy so new inputs the fuzzer finds do not dirty the source tree.
corpus="$out/spec_corpus"
rm -rf "$corpus"
cp -r "$here/spec_corpus" "$corpus"
# -malloc_limit_mb: one input must never allocate without bound (alias expansion, huge counts).
exec "$bin" -runs="$runs" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -malloc_limit_mb=512 -dict="$here/spec.dict" \
  -artifact_prefix="$out/spec-" "$corpus"
