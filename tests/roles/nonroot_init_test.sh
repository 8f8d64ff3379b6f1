#!/usr/bin/env bash
# Issue 11 D6: `warren cluster init` with every default, as a user without privileges, gives a
# working cluster with mutual TLS: the default DNS address (port 53) needs root, so DNS is off with a warning
# that names the flag to pass, and everything else serves (API 127.0.0.1:8080, metrics
# 127.0.0.1:9471, data ./warren-data, tasks). Runs as `nobody` in a network namespace of its
# own, so the default ports are free whatever else runs on the machine; without root (to make
# the namespace and drop to nobody) or unshare/ip/setpriv it is skipped (exit 77).
#   nonroot_init_test.sh BUILD_DIR
set -euo pipefail
BUILD_DIR="$(cd "$1" && pwd)"
if [ -z "${WARREN_NONROOT_NETNS:-}" ]; then
  for tool in unshare ip setpriv curl jq; do
    command -v "$tool" >/dev/null || { echo "SKIP: needs $tool"; exit 77; }
  done
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: needs root to make a network namespace and drop to nobody"
    exit 77
  fi
  exec env WARREN_NONROOT_NETNS=1 unshare --net -- "$0" "$@"
fi
ip link set lo up

TMP="$(mktemp -d /tmp/warren-nonroot.XXXXXX)"
chown 65534:65534 "$TMP"
# The node writes its admin client bundle to the default ~/.warren and the CLI reads it from
# there (mutual TLS is the default): a home of the test's own, writable by nobody.
export HOME="$TMP"
unset WARREN_TLS_DIR
W="$BUILD_DIR/warren"
pid=""
cleanup() {
  "$W" service rm web >/dev/null 2>&1 || true
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  for p in $(cat "$TMP"/task-pids 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# Every default: no flag at all, data in ./warren-data of the current directory.
(cd "$TMP" && exec setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
  "$W" cluster init) >"$TMP/node.log" 2>&1 &
pid=$!
ready() { "$W" node ls -o json | jq -e '[.nodes[] | select(.state == "NODE_STATE_READY")] | length == 1'; }
poll 300 ready || fail "a non-root cluster init with the defaults did not come up"
kill -0 "$pid" 2>/dev/null || fail "cluster init exited"
grep -q 'service DNS is off: 127.0.0.11:53 needs root or CAP_NET_BIND_SERVICE.*--dns-addr' \
  "$TMP/node.log" || fail "no clear warning about the DNS address"
[ -d "$TMP/warren-data" ] || fail "no ./warren-data"
curl -sf http://127.0.0.1:9471/metrics | grep -q '^warren_' || fail "no metrics on 127.0.0.1:9471"

"$W" service create web --command "$BUILD_DIR/warren-testapp" --replicas 1 \
  --health-http /healthz --health-interval 200ms >/dev/null || fail "service create"
healthy() {
  "$W" service ps web -o json >"$TMP/ps.json" || return 1
  jq -r '.tasks[]? | .status.pid // empty' "$TMP/ps.json" >"$TMP/task-pids"
  jq -e '[.tasks[] | select(.status.health.state == "HEALTH_STATE_HEALTHY")] | length == 1' \
    "$TMP/ps.json"
}
poll 300 healthy || fail "the task did not turn healthy"
task_pid="$(head -n 1 "$TMP/task-pids")"
[ "$(stat -c %u "/proc/$task_pid")" = 65534 ] || fail "the task does not run as the node's user"
[ -f "$TMP/.warren/current/current/cert.pem" ] || fail "no admin client bundle in ~/.warren/current"
echo "PASS: a non-root cluster init with the defaults serves over mutual TLS (DNS off with a warning)"
