#!/usr/bin/env bash
# Runs the test suite several times in a row (default 3) under CPU load (`stress-ng --cpu 2`)
# with another Warren cluster running beside it, its tasks in a loopback range the end-to-end
# tests could pick too (issue 11 D8). Every run must pass.
#   scripts/stress-suite.sh [--runs N] [-- CTEST_ARGS...]
# Without CTEST_ARGS a run is the whole suite as scripts/test.sh runs it (unit and integration
# tests with -j2, then the e2e tests with -j1); with them, `ctest CTEST_ARGS` (for a shorter
# check, e.g. `-- -L e2e -R 'E2eTest\.(Replicas|Global)'`). Installs stress-ng with apt-get
# when it is missing; builds first when build/warren is missing. BUILD_DIR overrides ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
runs=3
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "usage: $0 [--runs N] [-- CTEST_ARGS...]" >&2; exit 2 ;;
  esac
done

if ! command -v stress-ng >/dev/null; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq stress-ng >/dev/null
fi
[ -x "$BUILD_DIR/warren" ] && [ -x "$BUILD_DIR/warren-testapp" ] || ./scripts/build.sh
W="$(pwd)/$BUILD_DIR/warren"
APP="$(pwd)/$BUILD_DIR/warren-testapp"

TMP="$(mktemp -d /tmp/warren-stress-suite.XXXXXX)"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API="127.0.0.1:$(free_port)"
PUB="$(free_port)"
cluster_pid=""
stress_pid=""
cleanup() {
  [ -n "$stress_pid" ] && kill "$stress_pid" 2>/dev/null || true
  if [ -n "$cluster_pid" ]; then
    # --stop-tasks-on-exit: the node stops its tasks before it exits.
    kill "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  [ -n "$stress_pid" ] && wait "$stress_pid" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# The cluster beside: its own ports, tasks in 127.150.0.0/16 (inside the e2e tests' 127.100-199).
"$W" cluster init --data-dir "$TMP/beside" --api-addr "$API" --metrics-addr 127.0.0.1:0 \
  --dns-addr "" --node-name beside --address-range 127.150.0.0/16 --stop-tasks-on-exit \
  --tls-root "$TMP/home" \
  >"$TMP/beside.log" 2>&1 &
cluster_pid=$!
beside_failed() {
  echo "stress-suite: the cluster beside did not come up: $*"
  tail "$TMP/beside.log"
  exit 1
}
for _ in $(seq 1 300); do
  "$W" --manager "$API" --tls-dir "$TMP/home/current" node ls >/dev/null 2>&1 && break
  kill -0 "$cluster_pid" 2>/dev/null || beside_failed "it exited"
  sleep 0.1
done
"$W" --manager "$API" --tls-dir "$TMP/home/current" service create beside --command "$APP" --replicas 4 \
  --publish "127.0.0.1:$PUB:8080" \
  --health-http /healthz --health-interval 1s >/dev/null
for _ in $(seq 1 300); do
  healthy=$("$W" --manager "$API" --tls-dir "$TMP/home/current" service ps beside -o json |
    jq '[.tasks[] | select(.status.health.state == "HEALTH_STATE_HEALTHY")] | length')
  [ "$healthy" = 4 ] && break
  sleep 0.1
done
[ "$healthy" = 4 ] || beside_failed "its tasks did not turn healthy"
echo "stress-suite: a cluster beside on $API (4 tasks in 127.150.0.0/16), stress-ng --cpu 2"

stress-ng --cpu 2 --timeout 0 --quiet &
stress_pid=$!

failed=0
for run in $(seq 1 "$runs"); do
  start=$(date +%s)
  ok=1
  if [ ${#ctest_args[@]} -gt 0 ]; then
    ctest --test-dir "$BUILD_DIR" --output-on-failure "${ctest_args[@]}" || ok=0
  else
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 -LE e2e || ok=0
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j1 -L e2e || ok=0
  fi
  kill -0 "$cluster_pid" 2>/dev/null || { echo "stress-suite: the cluster beside exited"; ok=0; }
  echo "stress-suite: run $run/$runs $([ $ok = 1 ] && echo passed || echo FAILED) in $(($(date +%s) - start)) s"
  [ $ok = 1 ] || failed=$((failed + 1))
done
[ "$failed" = 0 ] || { echo "stress-suite: $failed of $runs runs failed"; exit 1; }
echo "stress-suite: all $runs runs passed"
