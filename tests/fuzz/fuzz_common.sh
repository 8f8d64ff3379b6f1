# Sourced by the run_*_fuzz.sh scripts: builds a libFuzzer target with clang++ (ASan + UBSan),
# only when one of its inputs changed, and runs it for a bounded time on a copy of its checked-in
# seed corpus (so new inputs the fuzzer finds do not dirty the source tree).
#
#   fuzz_build BIN "SOURCES..." "WATCHED FILES OR DIRS..." [COMPILER FLAGS...] [-- LINKER FLAGS...]
#   fuzz_run BIN CORPUS_DIR OUT_DIR RUNS SECONDS MAX_LEN
fuzz_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FUZZ_CXX="${FUZZ_CXX:-clang++}"

fuzz_build() {
  local bin=$1 srcs=$2 watched=$3
  shift 3
  command -v "$FUZZ_CXX" >/dev/null || { echo "fuzz: $FUZZ_CXX not found" >&2; return 1; }
  mkdir -p "$(dirname "$bin")"
  # shellcheck disable=SC2086  # word splitting of the lists is intended
  if [ -x "$bin" ] && [ -z "$(find $srcs $watched "$0" "${BASH_SOURCE[0]}" -newer "$bin" 2>/dev/null)" ]; then
    return 0
  fi
  local flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -I"$fuzz_root/src")
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
  [ $# -gt 0 ] && shift  # the --; what follows is for the linker
  # One compiler per source, side by side (the sources with Beast and asio take a minute each).
  local objs=() pids=() src obj
  for src in $srcs; do
    obj="$bin.$(basename "$src").o"
    "$FUZZ_CXX" "${flags[@]}" -c "$src" -o "$obj" &
    pids+=($!)
    objs+=("$obj")
  done
  local pid failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || return 1
  "$FUZZ_CXX" "${flags[@]}" "${objs[@]}" -o "$bin.tmp" "$@" && mv "$bin.tmp" "$bin" && rm -f "${objs[@]}"
}

fuzz_run() {
  local bin=$1 seeds=$2 out=$3 runs=$4 seconds=$5 max_len=$6
  local corpus="$out/$(basename "$bin")_corpus"
  rm -rf "$corpus"
  cp -r "$seeds" "$corpus"
  exec "$bin" -runs="$runs" -max_total_time="$seconds" -max_len="$max_len" -timeout=5 \
    -artifact_prefix="$out/$(basename "$bin")-" "$corpus"
}
