#!/usr/bin/env bash
# What a task writing at full speed costs: `/usr/bin/yes` as the one task of a `cluster init`
# node with the default log limits (or LOG_MAX_SIZE / LOG_MAX_FILES), for SECONDS. Prints the
# CPU of the task's warren-shim (which drains and rotates the output), of `yes` and of the
# warren process, the shim's write rate and resident memory, and the task directory's size on
# disk against the cap. Everything it starts is stopped, also on failure.
#   bench/task_log_bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
BUILD=$(realpath "${1:-build}")
SECONDS_RUN=${2:-10}
LOG_MAX_SIZE=${LOG_MAX_SIZE:-10M}
LOG_MAX_FILES=${LOG_MAX_FILES:-3}
for bin in "$BUILD/warren" "$BUILD/warren-shim"; do
  [ -x "$bin" ] || { echo "task_log_bench: $bin not built" >&2; exit 1; }
done
dir=$(mktemp -d /tmp/warren-task-log-bench.XXXXXX)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
api=127.0.0.1:$(free_port)
node=
cleanup() {
  [ -n "$node" ] && kill "$node" 2>/dev/null && wait "$node" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
# Mutual TLS (the default), with the CLI's admin bundle in the run's dir, not ~/.warren.
export WARREN_TLS_DIR="$dir/home/current"
"$BUILD/warren" cluster init --data-dir "$dir/data" --api-addr "$api" \
  --metrics-addr "127.0.0.1:$(free_port)" --dns-addr "127.0.0.1:$(free_port)" \
  --address-range 127.232.0.0/16 --stop-tasks-on-exit --tls-root "$dir/home" \
  --log-max-size "$LOG_MAX_SIZE" --log-max-files "$LOG_MAX_FILES" >"$dir/node.log" 2>&1 &
node=$!
w() { "$BUILD/warren" --manager "$api" "$@"; }
for _ in $(seq 100); do w node ls >/dev/null 2>&1 && break; sleep 0.1; done
w service create chatty --command /usr/bin/yes >/dev/null
shim=
for _ in $(seq 100); do
  shim=$(pgrep -f "^$BUILD/warren-shim $dir/" | head -1 || true)
  [ -n "$shim" ] && [ -n "$(pgrep -P "$shim" || true)" ] && break
  sleep 0.1
done
task=$(pgrep -P "$shim")
tick=$(getconf CLK_TCK)
cpu() { awk -v t="$tick" '{print ($14+$15)/t}' "/proc/$1/stat"; }
written() { awk '/^wchar/{print $2}' "/proc/$1/io"; }
s0=$(cpu "$shim"); t0=$(cpu "$task"); n0=$(cpu "$node"); b0=$(written "$shim"); start=$(date +%s.%N)
sleep "$SECONDS_RUN"
s1=$(cpu "$shim"); t1=$(cpu "$task"); n1=$(cpu "$node"); b1=$(written "$shim"); end=$(date +%s.%N)
rss=$(awk '/^VmRSS/{print $2}' "/proc/$shim/status")
disk=$(du -sk "$dir/data/worker/tasks" | cut -f1)
python3 - "$s0" "$s1" "$t0" "$t1" "$n0" "$n1" "$b0" "$b1" "$start" "$end" "$rss" "$disk" \
  "$LOG_MAX_SIZE" "$LOG_MAX_FILES" <<'PY'
import sys
s0, s1, t0, t1, n0, n1, b0, b1, start, end = map(float, sys.argv[1:11])
rss, disk = int(sys.argv[11]), int(sys.argv[12])
wall = end - start
print("| What | Value |")
print("|---|---|")
print(f"| warren-shim CPU (drains and rotates) | {s1 - s0:.2f} s in {wall:.1f} s ({100 * (s1 - s0) / wall:.0f}% of a core) |")
print(f"| the task (`yes`) CPU | {t1 - t0:.2f} s |")
print(f"| the warren process CPU | {n1 - n0:.2f} s |")
print(f"| shim write rate | {(b1 - b0) / wall / 1e6:.0f} MB/s |")
print(f"| shim resident memory | {rss} KiB |")
print(f"| task directory on disk | {disk / 1024:.1f} MiB (cap {sys.argv[14]} x {sys.argv[13]}) |")
PY
