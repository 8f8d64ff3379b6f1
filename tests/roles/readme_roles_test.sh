#!/usr/bin/env bash
# Issue 11 D5: the README's separate-roles example, as written, on one machine: a manager and
# two workers with their default addresses (they used to default to the same DNS address, and
# the second process exited with "Address already in use"). The commands are read from
# README.md, with build/ pointing at BUILD_DIR and /var/lib/ at a temp dir. It runs in a network
# namespace of its own, so the defaults (API 127.0.0.1:8080, DNS on port 53) are free whatever
# else runs on the machine; without root (or unshare/ip) it is skipped (exit 77).
#   readme_roles_test.sh BUILD_DIR
set -euo pipefail
BUILD_DIR="$(cd "$1" && pwd)"
README="$(cd "$(dirname "$0")/../.." && pwd)/README.md"
if [ -z "${WARREN_README_NETNS:-}" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
    echo "SKIP: needs root, unshare and ip for a network namespace of its own"
    exit 77
  fi
  exec env WARREN_README_NETNS=1 unshare --net -- "$0" "$@"
fi
ip link set lo up

TMP="$(mktemp -d /tmp/warren-readme-roles.XXXXXX)"
# The manager writes the admin client bundle to ~/.warren (mutual TLS is the default): a home
# of the test's own.
export HOME="$TMP"
unset WARREN_TLS_DIR
W="$BUILD_DIR/warren"
pids=()
cleanup() {
  # Tasks outlive their worker by design; stop them through the manager first.
  "$W" service rm web >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do
    [ "$("$W" service ps web -o json 2>/dev/null | jq '[.tasks[]?] | length' 2>/dev/null || echo 0)" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in $(cat "$TMP"/task-pids 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# The shell block after "Separate roles" in the README: commands ending in `&` run in the
# background, the others (the join token) in this shell, retried while the manager starts.
mapfile -t lines < <(awk '/Separate roles/ { s = 1 } s && /^```sh/ { b = 1; next } b && /^```/ { exit } b' "$README")
[ "${#lines[@]}" -ge 4 ] || fail "README.md: no separate-roles block with four commands"
i=0
for line in "${lines[@]}"; do
  [ -n "$line" ] || continue
  cmd="${line//build\/warren/$W}"
  cmd="${cmd//\/var\/lib\//$TMP/}"
  echo "+ $cmd"
  if [[ "$line" != *"&" ]]; then
    poll 300 eval "$cmd" || fail "README.md: $line"
    continue
  fi
  i=$((i + 1))
  eval "exec ${cmd%&}" >"$TMP/node$i.log" 2>&1 &
  pids+=("$!")
done

ready_nodes() { [ "$("$W" node ls -o json | jq '[.nodes[] | select(.state == "NODE_STATE_READY")] | length')" = 2 ]; }
poll 300 ready_nodes || fail "the manager and two ready workers did not come up"
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "a process of the example exited"; done

"$W" service create web --command "$BUILD_DIR/warren-testapp" --replicas 2 \
  --health-http /healthz --health-interval 200ms >/dev/null || fail "service create"
healthy() {
  "$W" service ps web -o json >"$TMP/ps.json" || return 1
  jq -r '.tasks[]? | .status.pid // empty' "$TMP/ps.json" >"$TMP/task-pids"
  [ "$(jq '[.tasks[] | select(.status.health.state == "HEALTH_STATE_HEALTHY")] | length' "$TMP/ps.json")" = 2 ] &&
    [ "$(jq '[.tasks[].nodeId] | unique | length' "$TMP/ps.json")" = 2 ]
}
poll 300 healthy || fail "web did not get two healthy tasks on the two workers"

# Every node serves DNS on its own default address: the manager on 127.0.0.11, each worker
# on the first address of its range; all of them know both tasks.
for dns in 127.0.0.11 127.1.0.0 127.2.0.0; do
  answers() { [ "$(dig +short +time=1 +tries=1 @"$dns" web.warren A | grep -c '^127\.')" = 2 ]; }
  poll 100 answers || fail "DNS on $dns:53 does not answer web.warren with two tasks"
done
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || fail "a process of the example exited"; done
echo "PASS: the README's separate-roles example runs on one machine"
