#!/usr/bin/env bash
# The demo: a single-node cluster on the embedded default (process runtime), three replicas of
# warren-testapp behind a published port, and three deployments under live traffic through that
# port: a rolling update v1 -> v2, a canary v3 (20% -> 50% -> 100%, analysed at each step) and a
# bad canary v4 (30% of its answers are 500s) that Warren rolls back on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh warren warren-testapp
BIN="$PWD/build/warren"
APP="$PWD/build/warren-testapp"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DATA="$(mktemp -d /tmp/warren-demo.XXXXXX)"
API="127.0.0.1:$(free_port)"
METRICS="127.0.0.1:$(free_port)"
DNS="127.0.0.1:$(free_port)"
PUB="$(free_port)"
# A loopback /16 that nothing listens on yet, so tasks of another cluster on this machine (a
# second demo, say) cannot take our task addresses.
RANGE="$(python3 -c '
import random, subprocess
busy = subprocess.run(["ss", "-Htln"], capture_output=True, text=True).stdout
for x in random.sample(range(100, 200), 100):
    if f" 127.{x}." not in busy:
        print(f"127.{x}.0.0/16"); break')"
export WARREN_MANAGER="$API"
# The API runs mutual TLS (the default); the node writes the CLI's admin bundle here instead
# of ~/.warren, so the demo leaves the user's own cluster settings alone.
export WARREN_TLS_DIR="$DATA/home/current"

echo "== warren cluster init (data in $DATA/node, API $API with mutual TLS, metrics $METRICS, DNS $DNS, tasks $RANGE)"
"$BIN" cluster init --data-dir "$DATA/node" --api-addr "$API" --metrics-addr "$METRICS" \
  --dns-addr "$DNS" --address-range "$RANGE" --tls-root "$DATA/home" --stop-tasks-on-exit \
  >"$DATA/warren.log" 2>&1 &
CLUSTER=$!
LOAD=""
cleanup() {
  [ -n "$LOAD" ] && kill -TERM "$LOAD" 2>/dev/null || true
  kill -TERM "$CLUSTER" 2>/dev/null || true
  wait "$CLUSTER" 2>/dev/null || true
  echo "== stopped; logs and data kept in $DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do "$BIN" node ls >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN" node ls

echo; echo "== service create web (3 replicas, HTTP health check, published on port $PUB)"
"$BIN" service create web --command "$APP" --replicas 3 --env VERSION=v1 --publish "$PUB:8080" \
  --health-http /healthz --health-interval 500ms --drain-timeout 1s --stop-timeout 5s
healthy=0
for _ in $(seq 100); do
  healthy="$("$BIN" service ps web | grep -c ' healthy' || true)"
  [ "$healthy" -ge 3 ] && break; sleep 0.2
done
"$BIN" service ps web
[ "$healthy" -ge 3 ] || { echo "the replicas did not turn healthy; see $DATA" >&2; exit 1; }

# Live traffic through the published port (the proxy), 200 requests/s, one phase at a time:
# each phase ends with the load generator's count of requests, failures and answers by version.
start_load() {
  python3 scripts/demo_load.py --url "http://127.0.0.1:$PUB/" --rate 200 --seconds 90 \
    --label "$1" &
  LOAD=$!
  sleep 1
}
stop_load() {
  sleep 1
  kill -TERM "$LOAD" 2>/dev/null || true
  wait "$LOAD" || true
  LOAD=""
}

echo; echo "== 1. rolling update under load: service update web --env VERSION=v2"
start_load "rolling v1->v2"
"$BIN" service update web --env VERSION=v2
stop_load

echo; echo "== 2. canary under load: v3 at 20%, 50%, 100%, 5 s analysis window per step"
start_load "canary v3"
"$BIN" service update web --env VERSION=v3 --strategy canary --canary-steps 20,50,100 \
  --canary-window 5s --min-requests 20 --failure-threshold 5 --detach
sleep 3
"$BIN" service canary status web
"$BIN" service rollout status web --watch
stop_load

echo; echo "== 3. a bad canary under load: v4 answers 30% of requests with 500 (ERROR_RATE=0.3)"
start_load "bad canary v4"
if "$BIN" service update web --env VERSION=v4 --env ERROR_RATE=0.3; then
  echo "unexpected: the bad canary was promoted" >&2
  exit 1
fi
stop_load
echo; "$BIN" service canary status web

echo; "$BIN" service history web
echo; "$BIN" service endpoints web
echo; echo "== metrics"
curl -s "http://$METRICS/metrics" |
  grep -E '^warren_(deployments_total|rollbacks_total|canary_promotion_steps_total)' | grep -v ' 0$' || true
