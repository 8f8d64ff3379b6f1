#!/usr/bin/env bash
# Several hosts (issue 13): three "hosts" as network namespaces on this machine (a veth pair each
# into one bridge, the underlay), a manager in the root namespace, a `warren worker --network
# MODE` per host (wireguard: `--encrypt`). For each MODE, in a cluster of its own:
#  - throughput: wrk inside host 1 against host 1's published port, for a service whose tasks
#    run on host 1 (same-host) and for the same service shape on host 2 (cross-host: host 1's
#    proxy -> the overlay or the host-gw route -> the task on host 2); the runs alternate
#    (same, cross, same, cross, ...) and the medians are reported, with the ratio cross/same;
#  - routing change: a service spread over the three hosts is scaled up by one, and every
#    host's published port is polled (from the root namespace to the host's underlay address;
#    each poll sends one request per task at once on fresh connections, so the proxy's
#    least-request balancing reaches every task) until an answer comes from the new task; the
#    sample is the answer's arrival minus the task's health.healthySince (stamped by its
#    worker's prober), so it includes up to one poll period (printed: the resolution).
#    All processes run on this machine, so these wall clocks are one clock.
# Prints a markdown table (one row per mode) and notes.
#   bench/multihost_bench.sh [BUILD_DIR]   (needs root, iproute2, wrk, python3, curl)
# Env: MODES (default "vxlan host-gw", and wireguard when wg and wireguard-go are installed), DURATION (wrk, 10s), THREADS (2), CONNECTIONS (50),
# ROUNDS (alternated same/cross pairs, 2), REPLICAS (tasks per throughput service, 2), TRIALS
# (routing-change trials per mode, 10), POLL_MS (pause between polls of one host, 1).
# Names: namespaces wb<pid>h1..3, bridge wb<pid>br, underlay 10.253.X.0/24 (X held by an flock
# on /run/lock/warren-multihost-bench-X.lock for the run). Everything it makes is removed on
# exit; traffic stays between these namespaces and the bridge. About 75 s per mode.
set -euo pipefail
BUILD=${1:-build}
# wireguard (`worker --encrypt`) where wg and wireguard-go are installed.
DEFAULT_MODES="vxlan host-gw"
command -v wg >/dev/null && command -v wireguard-go >/dev/null && DEFAULT_MODES="$DEFAULT_MODES wireguard"
MODES=${MODES:-$DEFAULT_MODES}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
ROUNDS=${ROUNDS:-2}
REPLICAS=${REPLICAS:-2}
TRIALS=${TRIALS:-10}
POLL_MS=${POLL_MS:-1}
HOSTS=3

W=$(realpath "$BUILD/warren" 2>/dev/null || true)
APP=$(realpath "$BUILD/warren-testapp" 2>/dev/null || true)
for bin in "$W" "$APP"; do
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "multihost_bench: $BUILD/warren and $BUILD/warren-testapp must be built" >&2
    exit 1
  fi
done
[ "$(id -u)" = 0 ] || { echo "multihost_bench: needs root (network namespaces, veth, bridge)" >&2; exit 1; }
for tool in ip wrk python3 curl flock; do
  command -v "$tool" >/dev/null || { echo "multihost_bench: $tool not installed" >&2; exit 1; }
done
ip netns list >/dev/null 2>&1 || { echo "multihost_bench: \`ip netns\` does not work here" >&2; exit 1; }
# With br_netfilter, bridged frames pass the root namespace's iptables FORWARD chain: a DROP
# policy there (Docker sets one) cuts the hosts off from each other.
if [ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" = 1 ] && command -v iptables >/dev/null &&
  iptables -S FORWARD 2>/dev/null | grep -q -- '-P FORWARD DROP'; then
  echo "multihost_bench: bridged traffic passes iptables FORWARD (bridge-nf-call-iptables=1), whose policy is DROP" >&2
  exit 1
fi
for m in $MODES; do
  case "$m" in vxlan | host-gw | wireguard) ;; *) echo "multihost_bench: unknown mode $m (vxlan host-gw wireguard)" >&2; exit 1 ;; esac
done

load() { awk '{print $1", "$2", "$3}' /proc/loadavg; }
LOAD_START=$(load)
START_S=$(date +%s)

TMP=$(mktemp -d /tmp/warren-multihost-bench.XXXXXX)
PFX="wb$$"
MANAGER_PID=""
WORKER_PIDS=()
LOCK_FD=""

ns() { echo "${PFX}h$1"; }

# The underlay 10.253.X.0/24: an X no other run holds and no interface of this machine uses.
NET=""
for k in $(seq 0 249); do
  x=$(((($$ + k) % 250) + 1))
  if ip -4 -o addr show | grep -q " 10\.253\.$x\."; then continue; fi
  exec {LOCK_FD}>"/run/lock/warren-multihost-bench-$x.lock"
  if flock -n "$LOCK_FD"; then
    NET="10.253.$x"
    break
  fi
  exec {LOCK_FD}>&-
done
[ -n "$NET" ] || { echo "multihost_bench: no free 10.253.X.0/24" >&2; exit 1; }

# Stops the cluster and removes the namespaces and the bridge (idempotent, bounded).
teardown() {
  local p i n pids
  for p in "${WORKER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # Workers stop their tasks on exit (--stop-tasks-on-exit); at most 10 s.
  for _ in $(seq 100); do
    n=0
    for p in "${WORKER_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done
    [ "$n" = 0 ] && break
    sleep 0.1
  done
  for i in $(seq "$HOSTS"); do
    if ip netns list | grep -qw "$(ns "$i")"; then
      pids=$(ip netns pids "$(ns "$i")" 2>/dev/null || true)
      # shellcheck disable=SC2086 # one pid per word
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
      ip netns del "$(ns "$i")" 2>/dev/null || true
    fi
    ip link del "${PFX}v$i" 2>/dev/null || true
  done
  if [ -n "$MANAGER_PID" ]; then
    kill -TERM "$MANAGER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$MANAGER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$MANAGER_PID" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  ip link del "${PFX}br" 2>/dev/null || true
  MANAGER_PID=""
  WORKER_PIDS=()
}
cleanup() {
  teardown
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# JSON helpers over the CLI's -o json (python3: no jq needed).
cat >"$TMP/helper.py" <<'PYEOF'
import calendar, json, os, re, socket, statistics, subprocess, sys, threading, time

W, API = os.environ["W"], os.environ["API"]

def cli(*args, timeout=20):
    return subprocess.run([W, "--manager", API, *args], capture_output=True, text=True,
                          timeout=timeout, check=True).stdout

def ts(s):
    # "2026-11-29T20:49:55.091676163Z" -> seconds since the epoch (nanoseconds kept).
    m = re.fullmatch(r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)(\.\d+)?Z", s)
    if not m:
        raise ValueError("timestamp " + s)
    whole = calendar.timegm(tuple(int(g) for g in m.groups()[:6]))
    return whole + (float(m.group(7)) if m.group(7) else 0.0)

def tasks(service):
    return json.loads(cli("service", "ps", service, "-o", "json")).get("tasks", [])

def live_healthy(service):
    return [t for t in tasks(service) if t.get("desiredState") == "TASK_STATE_RUNNING"
            and t.get("status", {}).get("state") == "TASK_STATE_RUNNING"
            and t.get("status", {}).get("health", {}).get("state") == "HEALTH_STATE_HEALTHY"]

def wait(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return
        except (subprocess.SubprocessError, ValueError):
            pass
        time.sleep(0.1)
    sys.exit("multihost_bench: timed out waiting for " + what)

def get_many(ip, port, k, timeout=1.0):
    """k GETs / at once, each on a fresh connection (in flight together, so the proxy's least-request
    balancing sends them to k different tasks): the X-Task-Ids answered (None for a failed one)."""
    socks, ids = [], []
    try:
        for _ in range(k):
            s = socket.create_connection((ip, port), timeout=timeout)
            socks.append(s)
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    for s in socks:
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        s.close()
        m = re.search(rb"\r\nX-Task-Id: *([^\r]+)\r\n", data, re.I)
        ids.append(m.group(1).decode() if m and data.startswith(b"HTTP/1.1 200") else None)
    return ids + [None] * (k - len(socks))

def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]

def cmd_nodes_ready(n):
    wait(lambda: sum(x.get("state") == "NODE_STATE_READY"
                     for x in json.loads(cli("node", "ls", "-o", "json")).get("nodes", [])) >= int(n),
         30, n + " ready nodes")

def cmd_healthy(service, n):
    wait(lambda: len(live_healthy(service)) == int(n), 60, f"{n} healthy tasks of {service}")

def cmd_routing(service, replicas, trials, poll_ms, port, *ips):
    replicas, trials, port, poll = int(replicas), int(trials), int(port), float(poll_ms) / 1000
    names = {x["id"]: x.get("name", x["id"])
             for x in json.loads(cli("node", "ls", "-o", "json")).get("nodes", [])}
    samples, periods, errors, placed, missed, event_lag = [], [], 0, {}, 0, []
    own, other = [], []  # samples of the proxy on the new task's host, of the other hosts
    new_ids = []
    for trial in range(trials):
        before = {t["id"] for t in tasks(service)}
        results = [None] * len(ips)
        stop = threading.Event()

        def poll_host(k):
            nonlocal errors
            polls, start, end = 0, time.time(), time.time() + 15
            while not stop.is_set() and time.time() < end and polls < 100000:
                answered = get_many(ips[k], port, replicas + 1)
                now = time.time()
                polls += 1
                errors += answered.count(None)
                new = [tid for tid in answered if tid is not None and tid not in before]
                if new:
                    results[k] = (now, new[0])
                    break
                time.sleep(poll)
            periods.append((time.time() - start) / max(polls, 1) * 1000)

        threads = [threading.Thread(target=poll_host, args=(k,)) for k in range(len(ips))]
        for t in threads:
            t.start()
        cli("service", "scale", f"{service}={replicas + 1}")
        for t in threads:
            t.join(20)
        stop.set()
        got = [r for r in results if r]
        if len(got) != len(ips):
            missed += len(ips) - len(got)
        if got:
            tid = got[0][1]
            new_ids.append(tid)
            holder = {}

            def healthy_since():
                for t in tasks(service):
                    if t["id"] == tid and t.get("status", {}).get("health", {}).get("healthySince"):
                        holder["t"] = t
                        return True
                return False
            wait(healthy_since, 10, "the new task's healthySince")
            hs = ts(holder["t"]["status"]["health"]["healthySince"])
            node = names.get(holder["t"].get("nodeId"), "?")
            placed[node] = placed.get(node, 0) + 1
            for k, r in enumerate(results):
                if r and r[1] == tid:
                    samples.append((r[0] - hs) * 1000)
                    (own if f"h{k + 1}" == node else other).append((r[0] - hs) * 1000)
                elif r:
                    missed += 1
            holder["hs"] = hs
            event_lag.append((tid, hs))
        cli("service", "scale", f"{service}={replicas}")
        wait(lambda: len([t for t in tasks(service) if t.get("desiredState") == "TASK_STATE_RUNNING"])
             == replicas and len(live_healthy(service)) == replicas, 30, "the scale-down")
        time.sleep(0.3)
    # The manager's "healthy" events of the new tasks (a breakdown: worker -> manager).
    lags = []
    try:
        out = subprocess.run([W, "--manager", API, "events", "--service", service, "-o", "json"],
                             capture_output=True, text=True, timeout=3).stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    healthy_events = {}
    for line in out.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("kind") == "task" and e.get("action") == "healthy":
            healthy_events.setdefault(e.get("objectId"), ts(e["time"]))
    for tid, hs in event_lag:
        if tid in healthy_events:
            lags.append((healthy_events[tid] - hs) * 1000)
    print(json.dumps({
        "samples": len(samples), "missed": missed, "errors": errors,
        "p50": pct(samples, 50) if samples else None, "p99": pct(samples, 99) if samples else None,
        "max": max(samples) if samples else None, "min": min(samples) if samples else None,
        "period": statistics.median(periods) if periods else None,
        "event_p50": statistics.median(lags) if lags else None,
        "own_p50": statistics.median(own) if own else None,
        "other_p50": statistics.median(other) if other else None,
        "placed": placed, "all": [round(s, 1) for s in samples]}))

def cmd_field(key):
    # Reads one JSON object on stdin and prints a field ("" when null).
    v = json.load(sys.stdin).get(key)
    if isinstance(v, float):
        print(f"{v:.1f}")
    elif isinstance(v, dict):
        print(" ".join(f"{k}:{n}" for k, n in sorted(v.items())))
    elif isinstance(v, list):
        print(" ".join(str(x) for x in v))
    else:
        print("" if v is None else v)

{"nodes-ready": cmd_nodes_ready, "healthy": cmd_healthy, "routing": cmd_routing,
 "field": cmd_field}[sys.argv[1]](*sys.argv[2:])
PYEOF
helper() { python3 "$TMP/helper.py" "$@"; }

# Builds the hosts and the cluster for one mode; leaves MANAGER_PID, WORKER_PIDS, API set.
setup() {
  local mode=$1 d="$TMP/$1" i port
  mkdir -p "$d"
  # Called in an `if`, so errexit is off here: every step that matters returns on failure.
  ip link add "${PFX}br" type bridge || return 1
  ip link set "${PFX}br" up
  ip addr add "$NET.254/24" dev "${PFX}br"
  for i in $(seq "$HOSTS"); do
    ip netns add "$(ns "$i")" || return 1
    ip link add "${PFX}v$i" type veth peer name eth0 netns "$(ns "$i")" || return 1
    ip link set "${PFX}v$i" master "${PFX}br" up
    ip -n "$(ns "$i")" addr add "$NET.$i/24" dev eth0
    ip -n "$(ns "$i")" link set eth0 up
    ip -n "$(ns "$i")" link set lo up
  done
  port=$(python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$NET.254")
  API="$NET.254:$port"
  export API W
  "$W" manager --data-dir "$d/m" --api-addr "$API" --metrics-addr 127.0.0.1:0 --dns-addr "" \
    --tls-root "$d/tls" >"$d/manager.log" 2>&1 </dev/null &
  MANAGER_PID=$!
  export WARREN_TLS_DIR="$d/tls/current"
  local token=""
  for _ in $(seq 100); do
    token=$(timeout 5 "$W" --manager "$API" cluster join-token worker -q 2>/dev/null) && break
    sleep 0.1
  done
  [ -n "$token" ] || { echo "multihost_bench: the manager did not start" >&2; cat "$d/manager.log" >&2; return 1; }
  # wireguard-go's control socket is /run/wireguard/warren.wg.sock on every host: each host
  # gets its own /run/wireguard (a tmpfs in the mount namespace `ip netns exec` makes).
  local wrap=()
  if [ "$mode" = wireguard ]; then
    mkdir -p /run/wireguard
    wrap=(/bin/sh -c 'mount -t tmpfs -o mode=0700 warren-wg /run/wireguard && exec "$@"' sh)
  fi
  for i in $(seq "$HOSTS"); do
    ip netns exec "$(ns "$i")" "${wrap[@]}" "$W" worker --manager "$API" --node-name "h$i" --data-dir "$d/w$i" \
      --advertise-addr "$NET.$i" --network "$mode" --stop-tasks-on-exit --token "$token" \
      >"$d/w$i.log" 2>&1 </dev/null &
    WORKER_PIDS+=($!)
  done
  helper nodes-ready "$HOSTS" || return 1
  local common=(--command "$APP" --health-http /healthz --health-interval 100ms --drain-timeout 100ms)
  wcli service create same "${common[@]}" --replicas "$REPLICAS" --publish 8081:8080 --constraint node.name==h1 >/dev/null || return 1
  wcli service create cross "${common[@]}" --replicas "$REPLICAS" --publish 8082:8080 --constraint node.name==h2 >/dev/null || return 1
  wcli service create rc "${common[@]}" --replicas 2 --publish 8083:8080 >/dev/null || return 1
  helper healthy same "$REPLICAS" || return 1
  helper healthy cross "$REPLICAS" || return 1
  helper healthy rc 2 || return 1
  # Every published port answers on every host (the routes and the overlay are in place).
  local p ok
  for i in $(seq "$HOSTS"); do
    for p in 8081 8082 8083; do
      ok=0
      for _ in $(seq 100); do
        if ip netns exec "$(ns "$i")" curl -fsS -m 1 -o /dev/null "http://$NET.$i:$p/" 2>/dev/null; then ok=1; break; fi
        sleep 0.1
      done
      [ "$ok" = 1 ] || { echo "multihost_bench: $mode: host $i port $p does not answer" >&2; return 1; }
    done
  done
}
wcli() { timeout 20 "$W" --manager "$API" "$@"; }

# wrk inside host 1 against host 1's port $1: "req/s p99_ms errors".
run_wrk() {
  local out rps p99 errors
  out=$(timeout 120 ip netns exec "$(ns 1)" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://$NET.1:$1/")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ' | sed 's/ *$//')
  echo "$rps $p99 ${errors:-none}"
}
median() { tr ' ' '\n' | sort -g | awk 'NF {v[n++]=$1} END {if (n == 0) print "-"; else if (n % 2) print v[(n-1)/2]; else printf "%.2f\n", (v[n/2-1]+v[n/2])/2}'; }
# Dropped packets and TCP retransmissions of a host: "eth0 rx/tx dropped, [warren.vx ...], retrans".
link_stats() {
  # shellcheck disable=SC2016 # expanded by the sh inside the namespace
  ip netns exec "$(ns "$1")" sh -c '
    for dev in eth0 warren.vx warren.wg; do
      [ -d /sys/class/net/$dev ] || continue
      printf "%s drops %s/%s " $dev $(cat /sys/class/net/$dev/statistics/rx_dropped) $(cat /sys/class/net/$dev/statistics/tx_dropped)
    done
    awk "/^Tcp:/ && !h {split(\$0, k); h=1; next} /^Tcp:/ {for (i in k) if (k[i] == \"RetransSegs\") print \"tcp retrans \" \$i}" /proc/net/snmp'
}

ROWS=()
NOTES=()
for mode in $MODES; do
  if ! setup "$mode"; then
    ROWS+=("| $mode | setup failed (stderr) | - | - | - | - | - | - | - | - | - |")
    tail -n 5 "$TMP/$mode"/*.log >&2 || true
    teardown
    continue
  fi
  tunnel=warren.vx
  [ "$mode" = wireguard ] && tunnel=warren.wg
  mtu=$(ip netns exec "$(ns 1)" cat /sys/class/net/$tunnel/mtu 2>/dev/null || echo "-")
  # Warm-up, then alternate.
  DURATION=2s run_wrk 8081 >/dev/null
  DURATION=2s run_wrk 8082 >/dev/null
  same_rps=() same_p99=() cross_rps=() cross_p99=() errs=()
  for _ in $(seq "$ROUNDS"); do
    read -r r p e <<<"$(run_wrk 8081)"
    same_rps+=("$r") same_p99+=("$p")
    [ "$e" = none ] || errs+=("same: $e")
    read -r r p e <<<"$(run_wrk 8082)"
    cross_rps+=("$r") cross_p99+=("$p")
    [ "$e" = none ] || errs+=("cross: $e")
  done
  s_rps=$(echo "${same_rps[*]}" | median)
  s_p99=$(echo "${same_p99[*]}" | median)
  c_rps=$(echo "${cross_rps[*]}" | median)
  c_p99=$(echo "${cross_p99[*]}" | median)
  ratio_rps=$(awk -v c="$c_rps" -v s="$s_rps" 'BEGIN {printf "%.2fx", c / s}')
  ratio_p99=$(awk -v c="$c_p99" -v s="$s_p99" 'BEGIN {printf "%.2fx", c / s}')
  stats="h1: $(link_stats 1); h2: $(link_stats 2)"

  ips=()
  for i in $(seq "$HOSTS"); do ips+=("$NET.$i"); done
  rc=$(helper routing rc 2 "$TRIALS" "$POLL_MS" 8083 "${ips[@]}") ||
    rc='{"samples": 0}'
  f() { helper field "$1" <<<"$rc"; }
  ROWS+=("| $mode | $s_rps | $s_p99 | $c_rps | $c_p99 | $ratio_rps | $ratio_p99 | $(f p50) | $(f p99) | $(f max) | $(f samples) |")
  NOTES+=("- $mode: runs (req/s, p99 ms) same-host $(paste -d/ <(tr ' ' '\n' <<<"${same_rps[*]}") <(tr ' ' '\n' <<<"${same_p99[*]}") | tr '\n' ' ')| cross-host $(paste -d/ <(tr ' ' '\n' <<<"${cross_rps[*]}") <(tr ' ' '\n' <<<"${cross_p99[*]}") | tr '\n' ' ')| wrk errors: ${errs[*]:-none}")
  NOTES+=("- $mode: $tunnel MTU $mtu (eth0 1500); after the wrk runs $stats")
  NOTES+=("- $mode: routing change: new task on $(f placed); samples not seen within 15 s: $(f missed); failed polls: $(f errors); poll period (the resolution; each poll sends 3 requests at once, one per task) median $(f period) ms; p50 on the new task's host $(f own_p50) ms, on the others $(f other_p50) ms; the manager's \"healthy\" event after healthySince, median $(f event_p50) ms; all samples (ms): $(f all)")
  teardown
done

echo "Multi-host: $HOSTS hosts as network namespaces on one machine ($(nproc) cores; veth pairs into one bridge), manager in the root namespace; throughput: wrk -t$THREADS -c$CONNECTIONS -d$DURATION inside host 1 against host 1's published port, $REPLICAS warren-testapp tasks on host 1 (same-host) or on host 2 (cross-host), $ROUNDS alternated rounds, medians; routing change: $TRIALS scale-ups of a service spread over the hosts, each host's published port polled from the root namespace (one request per task at once, fresh connections, every ${POLL_MS} ms plus the requests' time) until the new task answers, the answer's arrival minus the task's healthySince (one wall clock: every process runs on this machine)"
echo
echo "| --network | same-host req/s | same-host p99 (ms) | cross-host req/s | cross-host p99 (ms) | cross/same req/s | cross/same p99 | routing change p50 (ms) | p99 (ms) | max (ms) | samples (hosts x trials) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
echo
printf '%s\n' "${NOTES[@]}"
echo "- goals (issue 13): cross/same throughput >= 0.8x with vxlan; routing change p99 < 100 ms across 3 hosts"
echo "- load average before: $LOAD_START; after: $(load); wall time $(($(date +%s) - START_S)) s"
