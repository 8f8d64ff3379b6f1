#!/usr/bin/env bash
# The demo: a single-node cluster on the embedded default (process runtime), three replicas of
# warren-testapp with HTTP health checks, and a v1 -> v2 update under live traffic.
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
export WARREN_MANAGER="$API"

echo "== warren cluster init (data in $DATA, API $API, metrics $METRICS)"
"$BIN" cluster init --data-dir "$DATA" --api-addr "$API" --metrics-addr "$METRICS" \
  --address-range 127.77.0.0/16 --stop-tasks-on-exit >"$DATA/warren.log" 2>&1 &
CLUSTER=$!
cleanup() {
  kill -TERM "$CLUSTER" 2>/dev/null || true
  wait "$CLUSTER" 2>/dev/null || true
  echo "== stopped; logs and data kept in $DATA"
}
trap cleanup EXIT
for _ in $(seq 100); do "$BIN" node ls >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN" node ls

echo; echo "== service create web (3 replicas, HTTP health check)"
"$BIN" service create web --command "$APP" --replicas 3 --env VERSION=v1 \
  --health-http /healthz --health-interval 500ms --stop-timeout 5s
for _ in $(seq 100); do
  [ "$("$BIN" service ps web | grep -c healthy || true)" -ge 3 ] && break; sleep 0.2
done
"$BIN" service ps web

echo; echo "== live traffic, then: service update web --env VERSION=v2"
python3 scripts/demo_load.py --warren "$BIN" --manager "$API" --service web --seconds 60 \
  --until-version v2 &
LOAD=$!
sleep 2
"$BIN" service update web --env VERSION=v2
wait "$LOAD"

echo; "$BIN" service ps web
echo; echo "== service inspect web (revision)"; "$BIN" service inspect web -o json | grep -E '"(revision|name)"' | head -3
echo; echo "== recent events"; timeout 2 "$BIN" events --service web | tail -8 || true
echo; echo "== metrics"; curl -s "http://$METRICS/metrics" | grep -E '^warren_(services|tasks|nodes)' || true
