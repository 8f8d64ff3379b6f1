#!/usr/bin/env bash
# Container (cri) runtime vs process runtime, side by side:
#  1. time from `service create` of REPLICAS replicas (HTTP health check every 100 ms) until all
#     are healthy, RUNS times each, median and min-max, and the cri/process ratio; for cri, where
#     the time goes per pod (containerd's own log timestamps);
#  2. memory per running task: the worker's VmRSS with 0 and N tasks, and for containers what
#     containerd adds (containerd's VmRSS, the pods' containerd-shim-runc-v2 processes), and the
#     task processes themselves.
# Each runtime gets its own `warren manager` and `warren worker --manager` process, so the
# worker's RSS is the worker's own.
#   bench/runtime_bench.sh [BUILD_DIR]   (needs warren and warren-testapp built)
# Needs containerd and the registry of scripts/containers.sh, with IMAGE pushed and pulled.
# Env: RUNS (3), REPLICAS (10), RSS_COUNTS ("10 30"), IMAGE (127.0.0.1:5000/warren/testapp:1),
#   CRI_SOCKET (/run/containerd/containerd.sock), CONTAINERD_LOG (/var/log/warren-containerd.log),
#   CNI_NETWORK (warren-bench), CNI_BRIDGE (wbench0), CNI_SUBNET (10.214.0.0/24).
# The CNI network must sort before every other conflist in /etc/cni/net.d (containerd uses the
# first); its conflist is removed at the end, as are every service, task, pod and process the
# benchmark started, also on failure.
set -euo pipefail
BUILD=$(realpath "${1:-build}")
RUNS=${RUNS:-3}
REPLICAS=${REPLICAS:-10}
RSS_COUNTS=${RSS_COUNTS:-"10 30"}
IMAGE=${IMAGE:-127.0.0.1:5000/warren/testapp:1}
CRI_SOCKET=${CRI_SOCKET:-/run/containerd/containerd.sock}
CONTAINERD_LOG=${CONTAINERD_LOG:-/var/log/warren-containerd.log}
CNI_NETWORK=${CNI_NETWORK:-warren-bench}
CNI_BRIDGE=${CNI_BRIDGE:-wbench0}
CNI_SUBNET=${CNI_SUBNET:-10.214.0.0/24}
CNI_DIR=/etc/cni/net.d
WARREN=$BUILD/warren
TESTAPP=$BUILD/warren-testapp
for bin in "$WARREN" "$TESTAPP"; do
  [ -x "$bin" ] || { echo "runtime_bench: $bin not built" >&2; exit 1; }
done
for tool in ctr jq python3; do
  command -v "$tool" >/dev/null || { echo "runtime_bench: $tool not installed" >&2; exit 1; }
done
[ -S "$CRI_SOCKET" ] || { echo "runtime_bench: no CRI socket $CRI_SOCKET (scripts/containers.sh)" >&2; exit 1; }
CTR=(ctr --address "$CRI_SOCKET" -n k8s.io)

TMP=$(mktemp -d)
MARKER="WARREN_BENCH_RUN=$TMP"
NODE_CRI="bench-cri-$$"
NODE_PROC="bench-proc-$$"
RANGE="127.67.$(($$ % 250)).0/24"
API=""
MANAGER_PID=""
WORKER_PID=""
WORKER_ARGS=()
SERVICES=()

log() { echo "runtime_bench: $*" >&2; }
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
w() { timeout 20 "$WARREN" --manager "$API" "$@"; }

# Polls CONDITION (a command) every 50 ms for at most SECONDS.
wait_for() {
  local seconds=$1
  shift
  local deadline
  deadline=$(($(date +%s) + seconds))
  while ! "$@"; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.05
  done
}

rss_kib() { awk '/^VmRSS:/ {print $2; f = 1} END {if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kib() { awk '/^Pss:/ {print $2; f = 1} END {if (!f) print 0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# This benchmark's pod sandboxes (the cri worker labels them with its node name).
our_sandboxes() {
  "${CTR[@]}" containers ls -q "labels.\"io.warren.worker\"==$NODE_CRI,labels.\"io.cri-containerd.kind\"==sandbox" 2>/dev/null || true
}
our_containers() {
  "${CTR[@]}" containers ls -q "labels.\"io.warren.worker\"==$NODE_CRI" 2>/dev/null || true
}
no_pods() { [ -z "$(our_containers)" ]; }

# PIDs of the shims of our pods (containerd runs one containerd-shim-runc-v2 per pod, started
# with -id <sandbox id>).
our_shims() {
  local ids pid
  ids=" $(our_sandboxes | tr '\n' ' ') "
  # comm is cut to 15 characters: containerd-shim-runc-v2 shows as containerd-shim.
  for pid in $(pgrep -x containerd-shim || true); do
    local id
    id=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | awk 'p {print; exit} $0 == "-id" {p = 1}')
    [ -n "$id" ] && [[ "$ids" == *" $id "* ]] && echo "$pid"
  done
}

# Processes of this run's process-runtime tasks (they carry the marker in their environment).
marker_pids() {
  local pid
  for pid in $(pgrep -x warren-testapp || true); do
    grep -qaF "$MARKER" "/proc/$pid/environ" 2>/dev/null && echo "$pid"
  done
}
no_marker_procs() { [ -z "$(marker_pids)" ]; }

sum_rss() { local s=0 p; for p in "$@"; do s=$((s + $(rss_kib "$p"))); done; echo $s; }
sum_pss() { local s=0 p; for p in "$@"; do s=$((s + $(pss_kib "$p"))); done; echo $s; }
children() { local p; for p in "$@"; do pgrep -P "$p" || true; done; }

# Stops a process (SIGTERM, then SIGKILL after SECONDS) and reaps it.
stop_pid() {
  local pid=$1 seconds=${2:-30}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq $((seconds * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

start_manager() {
  API="127.0.0.1:$(free_port)"
  # Mutual TLS (the default), with the CLI's admin bundle in the run's dir, not ~/.warren.
  export WARREN_TLS_DIR="$TMP/home-$1/current"
  "$WARREN" manager --data-dir "$TMP/manager-$1" --api-addr "$API" --metrics-addr "" \
    --dns-addr "" --tls-root "$TMP/home-$1" >"$TMP/manager-$1.log" 2>&1 &
  MANAGER_PID=$!
}

# The worker join token, once the manager answers.
join_token() { wait_for 30 w cluster join-token worker -q >/dev/null 2>&1 && w cluster join-token worker -q; }

node_ready() { w node ls -o json 2>/dev/null | grep -q '"NODE_STATE_READY"'; }

start_worker() {
  local name=$1
  shift
  local token
  token=$(join_token) || { log "no join token from the manager"; return 1; }
  WORKER_ARGS=(--manager "$API" worker --token "$token" --node-name "$name" --data-dir "$TMP/$name"
    --address-range "$RANGE" --dns-addr "" --publish-ip 127.0.0.1 --stop-tasks-on-exit "$@")
  "$WARREN" "${WORKER_ARGS[@]}" >>"$TMP/$name.log" 2>&1 &
  WORKER_PID=$!
  if ! wait_for 60 node_ready; then
    log "worker $name did not become ready"
    tail -20 "$TMP/$name.log" >&2
    return 1
  fi
}

# Removes the services, stops the worker (which stops its tasks and removes its pods) and the
# manager. If pods of ours are still there, a worker of the same name is started once more: it
# adopts them, finds no task for them and removes them.
stop_cluster() {
  local s
  for s in "${SERVICES[@]}"; do w service rm "$s" >/dev/null 2>&1 || true; done
  SERVICES=()
  stop_pid "$WORKER_PID" 60
  WORKER_PID=""
  if [ -n "$MANAGER_PID" ] && ! no_pods; then
    log "pods left after the worker stopped; starting it again to remove them"
    "$WARREN" "${WORKER_ARGS[@]}" >>"$TMP/retry.log" 2>&1 &
    WORKER_PID=$!
    wait_for 60 no_pods || log "pods still there: $(our_containers | tr '\n' ' ')"
    stop_pid "$WORKER_PID" 60
    WORKER_PID=""
  fi
  stop_pid "$MANAGER_PID" 30
  MANAGER_PID=""
}

cleanup() {
  set +e
  stop_cluster
  for pid in $(marker_pids); do kill -KILL "$pid" 2>/dev/null; done
  rm -f "$CNI_DIR/10-$CNI_NETWORK.conflist"
  if no_pods; then
    # The bridge and the IPAM state of the benchmark's own network go too.
    ip link del "$CNI_BRIDGE" 2>/dev/null
    rm -rf "/var/lib/cni/networks/$CNI_NETWORK"
  else
    log "pods of $NODE_CRI remain: $(our_containers | tr '\n' ' ')"
  fi
  if [ -n "${KEEP_TMP:-}" ]; then log "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Tasks of NAME that are running, desired running and healthy: one healthySince per line.
healthy_since() {
  w service ps "$1" -o json 2>/dev/null | jq -r '.tasks[]? | select(.desiredState == "TASK_STATE_RUNNING"
    and .status.state == "TASK_STATE_RUNNING" and .status.health.state == "HEALTH_STATE_HEALTHY")
    | .status.health.healthySince' 2>/dev/null || true
}
healthy_count() { healthy_since "$1" | grep -c . || true; }

# Creates service NAME with COUNT replicas of the runtime's testapp, polls (every 50 ms, at most
# 120 s) until COUNT are healthy and prints two figures: seconds from the create call until the
# last task's healthySince (set by the worker's prober when its check passed, stored by the
# manager), and until the client saw all COUNT healthy.
create_and_wait() {
  local rt=$1 name=$2 count=$3 t0 n=0 since
  local what=(--command "$TESTAPP")
  [ "$rt" = cri ] && what=(--image "$IMAGE")
  SERVICES+=("$name")
  t0=$(now)
  w service create "$name" "${what[@]}" --replicas "$count" --health-http /healthz \
    --health-interval 100ms --env VERSION=1 --env "$MARKER" --stop-timeout 2s \
    --drain-timeout 100ms >/dev/null
  local deadline=$(($(date +%s) + 120))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    since=$(healthy_since "$name")
    n=$(echo -n "$since" | grep -c . || true)
    if [ "$n" -ge "$count" ]; then
      local seen last
      seen=$(now)
      last=$(echo "$since" | date -u -f - +%s.%N | sort -g | tail -1)
      calc "%.2f %.2f" "$last - $t0" "$seen - $t0"
      return 0
    fi
    sleep 0.05
  done
  log "$name: only $n of $count healthy after 120 s"
  w service ps "$name" >&2 || true
  return 1
}

scale_and_wait() {
  local name=$1 count=$2
  w service scale "$name=$count" >/dev/null
  for _ in $(seq 2400); do
    [ "$(healthy_count "$name")" -ge "$count" ] && return 0
    sleep 0.05
  done
  log "$name: not $count healthy after scaling"
  return 1
}

# Removes a service and waits (at most 60 s) until its tasks' processes or pods are gone.
remove_and_wait() {
  local rt=$1 name=$2
  w service rm "$name" >/dev/null
  SERVICES=("${SERVICES[@]/$name/}")
  if [ "$rt" = cri ]; then
    wait_for 60 no_pods || { log "pods of $name not removed within 60 s"; return 1; }
  else
    wait_for 60 no_marker_procs || { log "processes of $name not gone within 60 s"; return 1; }
  fi
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
minmax() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "-" hi}'; }
# calc FORMAT EXPR...: printf of awk expressions.
calc() {
  local fmt=$1
  shift
  local args
  args=$(printf '%s, ' "$@")
  awk "BEGIN { printf \"$fmt\", ${args%, } }"
}
mib() { calc "%.1f" "$1 / 1024"; }

declare -A TIMES SEEN RSS0 RSSN TASKRSS SHIMRSS SHIMPSS CTRD0 CTRDN
declare -A CRI_WINDOW
CTRD_PID=$(pgrep -xo containerd || true)

run_runtime() {
  local rt=$1 node=$2
  shift 2
  start_manager "$rt"
  start_worker "$node" --runtime "$rt" "$@"
  sleep 1
  # Memory first, on a fresh worker: 0 tasks, then each count in RSS_COUNTS.
  RSS0[$rt]=$(rss_kib "$WORKER_PID")
  CTRD0[$rt]=$(rss_kib "$CTRD_PID")
  local name="rss-$rt-$$" first=1 count pids
  for count in $RSS_COUNTS; do
    if [ $first = 1 ]; then
      create_and_wait "$rt" "$name" "$count" >/dev/null
      first=0
    else
      scale_and_wait "$name" "$count"
    fi
    sleep 2 # let the first probes, status reports and allocations settle
    RSSN[$rt,$count]=$(rss_kib "$WORKER_PID")
    CTRDN[$rt,$count]=$(rss_kib "$CTRD_PID")
    if [ "$rt" = cri ]; then
      mapfile -t pids < <(our_shims)
      SHIMRSS[$count]=$(sum_rss "${pids[@]}")
      SHIMPSS[$count]=$(sum_pss "${pids[@]}")
      mapfile -t pids < <(children "${pids[@]}") # pause and testapp of each pod
    else
      mapfile -t pids < <(marker_pids)
    fi
    TASKRSS[$rt,$count]=$(sum_rss "${pids[@]}")
  done
  remove_and_wait "$rt" "$name"
  # Time to healthy, fresh service each run.
  local i t from
  TIMES[$rt]=""
  SEEN[$rt]=""
  for i in $(seq "$RUNS"); do
    name="t$i-$rt-$$"
    from=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
    t=$(create_and_wait "$rt" "$name" "$REPLICAS")
    TIMES[$rt]+="${t% *} "
    SEEN[$rt]+="${t#* } "
    CRI_WINDOW[$i]="$name $from $(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
    remove_and_wait "$rt" "$name"
  done
  stop_cluster
}

run_runtime process "$NODE_PROC"
run_runtime cri "$NODE_CRI" --cri-socket "$CRI_SOCKET" --cni-network "$CNI_NETWORK" \
  --cni-bridge "$CNI_BRIDGE" --cni-subnet "$CNI_SUBNET"

p_med=$(echo "${TIMES[process]}" | median)
c_med=$(echo "${TIMES[cri]}" | median)
p_seen=$(echo "${SEEN[process]}" | median)
c_seen=$(echo "${SEEN[cri]}" | median)
echo "| $REPLICAS replicas, create → all healthy ($RUNS runs) | median | min-max | runs | seen by polling (median) |"
echo "|---|---:|---|---|---:|"
echo "| process runtime (\`warren-testapp\`) | $p_med s | $(echo "${TIMES[process]}" | minmax) s | ${TIMES[process]% } | $p_seen s |"
echo "| cri runtime (\`$IMAGE\`, already pulled) | $c_med s | $(echo "${TIMES[cri]}" | minmax) s | ${TIMES[cri]% } | $c_seen s |"
echo "| cri / process | $(calc "%.1fx" "$c_med / $p_med") | | | $(calc "%.1fx" "$c_seen / $p_seen") |"
echo
per() { calc "%.0f KiB" "($1) / $2"; }
echo "| memory (VmRSS) | tasks | process runtime | cri runtime |"
echo "|---|---:|---:|---:|"
echo "| worker | 0 | $(mib "${RSS0[process]}") MiB | $(mib "${RSS0[cri]}") MiB |"
for n in $RSS_COUNTS; do
  echo "| worker | $n | $(mib "${RSSN[process,$n]}") MiB | $(mib "${RSSN[cri,$n]}") MiB |"
done
for n in $RSS_COUNTS; do
  echo "| **worker increase per task** | $n | $(per "${RSSN[process,$n]} - ${RSS0[process]}" "$n") | $(per "${RSSN[cri,$n]} - ${RSS0[cri]}" "$n") |"
done
for n in $RSS_COUNTS; do
  echo "| containerd increase per task | $n | - | $(per "${CTRDN[cri,$n]} - ${CTRD0[cri]}" "$n") |"
  echo "| containerd-shim-runc-v2 per task, RSS (PSS) | $n | - | $(per "${SHIMRSS[$n]}" "$n") ($(per "${SHIMPSS[$n]}" "$n")) |"
  echo "| task processes per task (testapp; in a pod also pause) | $n | $(per "${TASKRSS[process,$n]}" "$n") | $(per "${TASKRSS[cri,$n]}" "$n") |"
  echo "| total per task (worker + containerd + shim PSS + processes) | $n | $(per "${RSSN[process,$n]} - ${RSS0[process]} + ${TASKRSS[process,$n]}" "$n") | $(per "${RSSN[cri,$n]} - ${RSS0[cri]} + ${CTRDN[cri,$n]} - ${CTRD0[cri]} + ${SHIMPSS[$n]} + ${TASKRSS[cri,$n]}" "$n") |"
done
echo
echo "containerd before the cri runs: $(mib "${CTRD0[cri]}") MiB VmRSS (it serves other clients too)."

# Where a container start goes, from containerd's log (the CRI calls it logs at info level).
if [ -r "$CONTAINERD_LOG" ]; then
  windows=()
  for i in $(seq "$RUNS"); do windows+=("${CRI_WINDOW[$i]}"); done
  echo
  python3 - "$CONTAINERD_LOG" "${TIMES[cri]}" "${windows[@]}" <<'EOF'
import re, statistics, sys
from datetime import datetime, timezone

def ts(s):
    # 2026-11-27T11:04:22.376036137Z -> epoch seconds (nanoseconds cut to microseconds)
    s = s.rstrip("Z")
    base, _, frac = s.partition(".")
    d = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return d.timestamp() + float("0." + (frac or "0"))

log_path, times = sys.argv[1], [float(t) for t in sys.argv[2].split()]
windows = [w.split() for w in sys.argv[3:]]
line_re = re.compile(r'^time="([^"]+)" level=\w+ msg="(.*)"')
phases = {k: [] for k in ("wait", "sandbox", "create", "start", "tail")}
for (name, start, end), total in zip(windows, times):
    t0, t1 = ts(start), ts(end)
    pods = {}  # pod name -> events; sandbox id -> pod; container id -> pod
    sb_pod, ct_pod = {}, {}
    with open(log_path, errors="replace") as f:
        for line in f:
            m = line_re.match(line)
            if not m:
                continue
            t = ts(m.group(1))
            if t < t0 or t > t1 + 5:
                continue
            msg = m.group(2).replace('\\"', '"')
            if msg.startswith("RunPodSandbox for &PodSandboxMetadata{Name:" + name + "-"):
                pod = msg.split("Name:", 1)[1].split(",", 1)[0]
                r = re.search(r'returns sandbox id "([0-9a-f]+)"', msg)
                if r:
                    pods.setdefault(pod, {})["sandbox_done"] = t
                    sb_pod[r.group(1)] = pod
                else:
                    pods.setdefault(pod, {})["sandbox"] = t
            elif msg.startswith("CreateContainer within sandbox"):
                sb = msg.split('"')[1]
                if sb in sb_pod:
                    r = re.search(r'returns container id "([0-9a-f]+)"', msg)
                    if r:
                        pods[sb_pod[sb]]["create_done"] = t
                        ct_pod[r.group(1)] = sb_pod[sb]
                    else:
                        pods[sb_pod[sb]]["create"] = t
            elif msg.startswith("StartContainer for"):
                ct = msg.split('"')[1]
                if ct in ct_pod:
                    key = "start_done" if "returns successfully" in msg else "start"
                    pods[ct_pod[ct]][key] = t
    full = [p for p in pods.values() if len(p) == 6]
    if not full:
        continue
    for p in full:
        phases["wait"].append(p["sandbox"] - t0)
        phases["sandbox"].append(p["sandbox_done"] - p["sandbox"])
        phases["create"].append(p["create_done"] - p["create"])
        phases["start"].append(p["start_done"] - p["start"])
    phases["tail"].append(t0 + total - max(p["start_done"] for p in full))
if not phases["sandbox"]:
    print("containerd's log had no CRI calls of the benchmark's pods (log level above info?)")
    sys.exit(0)
ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms (max {max(xs) * 1000:.0f})"
print(f"| cri: where a pod's start goes ({len(phases['sandbox'])} pods, containerd's log) | median (max) |")
print("|---|---:|")
print(f"| create call → RunPodSandbox received (manager, scheduler, worker) | {ms(phases['wait'])} |")
print(f"| RunPodSandbox (pause container, shim, netns, CNI bridge + IPAM) | {ms(phases['sandbox'])} |")
print(f"| CreateContainer (snapshot, OCI spec) | {ms(phases['create'])} |")
print(f"| StartContainer (runc in the pod's shim) | {ms(phases['start'])} |")
print(f"| last StartContainer returned → all healthy (per run) | {ms(phases['tail'])} |")
EOF
fi
