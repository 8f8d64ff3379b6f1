#!/usr/bin/env bash
# Starts what the cri runtime driver needs on this machine, as root: containerd with a config
# Warren owns (CRI plugin, runc with cgroupfs, CNI dirs, a loopback registry over plain HTTP)
# and a docker-registry on 127.0.0.1:5000. Safe to run again: whatever already runs and answers
# is left alone. `containers.sh stop` stops what this script started.
#
# Environment overrides (defaults in brackets):
#   WARREN_SANDBOX_IMAGE      [127.0.0.1:5000/warren/pause:1]
#   WARREN_CNI_BIN_DIR        [/usr/lib/cni]
#   WARREN_CNI_CONF_DIR       [/etc/cni/net.d]   the worker writes its CNI config here
#   WARREN_CONTAINERD_CONFIG  [/etc/warren/containerd/config.toml]
#   WARREN_CONTAINERD_SOCK    [/run/containerd/containerd.sock]
#   WARREN_CONTAINERD_ROOT    [/var/lib/containerd]
#   WARREN_CONTAINERD_STATE   [/run/containerd]
#   WARREN_CONTAINERD_LOG     [/var/log/warren-containerd.log]
set -euo pipefail

SANDBOX_IMAGE="${WARREN_SANDBOX_IMAGE:-127.0.0.1:5000/warren/pause:1}"
CNI_BIN_DIR="${WARREN_CNI_BIN_DIR:-/usr/lib/cni}"
CNI_CONF_DIR="${WARREN_CNI_CONF_DIR:-/etc/cni/net.d}"
CONFIG="${WARREN_CONTAINERD_CONFIG:-/etc/warren/containerd/config.toml}"
HOSTS_DIR="$(dirname "$CONFIG")/certs.d"
SOCK="${WARREN_CONTAINERD_SOCK:-/run/containerd/containerd.sock}"
ROOT_DIR="${WARREN_CONTAINERD_ROOT:-/var/lib/containerd}"
STATE_DIR="${WARREN_CONTAINERD_STATE:-/run/containerd}"
LOG="${WARREN_CONTAINERD_LOG:-/var/log/warren-containerd.log}"

REGISTRY_HOST=127.0.0.1:5000
REGISTRY_CONFIG=/etc/warren/registry/config.yml
REGISTRY_ROOT=/var/lib/warren-registry
REGISTRY_LOG=/var/log/warren-registry.log

RUN_DIR=/run/warren
# One pid file per socket, so an instance on another socket (WARREN_CONTAINERD_SOCK) is its own.
CONTAINERD_PID_FILE="$RUN_DIR/containerd$(echo "$SOCK" | tr '/' '_').pid"
REGISTRY_PID_FILE="$RUN_DIR/registry.pid"

die() {
  echo "containers.sh: $*" >&2
  exit 1
}

# The pid in $1 if that process is alive and its command line contains $2.
live_pid() {
  local pid_file=$1 needle=$2 pid
  [ -f "$pid_file" ] || return 1
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle" || return 1
  echo "$pid"
}

# ctr waits 10s to dial a socket that does not exist yet unless told otherwise.
containerd_answers() {
  [ -S "$SOCK" ] && ctr --address "$SOCK" --connect-timeout 1s --timeout 2s version >/dev/null 2>&1
}
registry_answers() { curl -fsS --max-time 2 "http://$REGISTRY_HOST/v2/" >/dev/null 2>&1; }

stop_pid() {
  local name=$1 pid=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "containers.sh: $name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

if [ "${1:-start}" = "stop" ]; then
  if pid=$(live_pid "$CONTAINERD_PID_FILE" "$CONFIG"); then
    stop_pid containerd "$pid"
    echo "containers.sh: stopped containerd (pid $pid)"
  fi
  if pid=$(live_pid "$REGISTRY_PID_FILE" "$REGISTRY_CONFIG"); then
    stop_pid registry "$pid"
    echo "containers.sh: stopped registry (pid $pid)"
  fi
  rm -f "$CONTAINERD_PID_FILE" "$REGISTRY_PID_FILE"
  exit 0
fi
[ "${1:-start}" = "start" ] || die "usage: containers.sh [start|stop]"
[ "$(id -u)" -eq 0 ] || die "must run as root (containerd and runc need it)"
for bin in containerd ctr runc docker-registry curl; do
  command -v "$bin" >/dev/null || die "$bin not found; run scripts/setup.sh"
done
[ -x "$CNI_BIN_DIR/bridge" ] && [ -x "$CNI_BIN_DIR/host-local" ] ||
  die "CNI plugins bridge and host-local not found in $CNI_BIN_DIR (containernetworking-plugins)"
mkdir -p "$RUN_DIR" "$CNI_CONF_DIR" "$ROOT_DIR" "$(dirname "$CONFIG")" "$(dirname "$LOG")"

# --- Snapshotter: overlayfs when this kernel and filesystem can mount it, else native --------
# Tried in the containerd root because that is where the snapshotter mounts (overlay on top of
# some filesystems, e.g. another overlay, is refused).
snapshotter=native
probe=$(mktemp -d "$ROOT_DIR/.warren-overlay-probe.XXXXXX")
mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
if mount -t overlay overlay \
  -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
  umount "$probe/merged"
  snapshotter=overlayfs
fi
rm -rf "$probe"

# --- Registry hosts: plain HTTP to the loopback registry ------------------------------------
# containerd 1.6 reads <config_path>/<host:port>/hosts.toml for CRI pulls. registry.mirrors
# cannot be used as well: 1.6 refuses to load the CRI plugin when both are set.
mkdir -p "$HOSTS_DIR/$REGISTRY_HOST"
cat >"$HOSTS_DIR/$REGISTRY_HOST/hosts.toml.tmp" <<EOF
# Written by scripts/containers.sh: the local Warren registry speaks plain HTTP.
server = "http://$REGISTRY_HOST"

[host."http://$REGISTRY_HOST"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
EOF
mv "$HOSTS_DIR/$REGISTRY_HOST/hosts.toml.tmp" "$HOSTS_DIR/$REGISTRY_HOST/hosts.toml"

# --- containerd config ----------------------------------------------------------------------
cat >"$CONFIG.tmp" <<EOF
# Written by scripts/containers.sh; edits are overwritten on the next run.
version = 2
root = "$ROOT_DIR"
state = "$STATE_DIR"

[grpc]
  address = "$SOCK"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"
  # CRI gives the sandbox oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE, which VMs and
  # CI containers often lack (runc then fails with "can't get final child's PID from pipe").
  # Restricted, containers never go below containerd's own score. Warren does not rely on it.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    # Probed by containers.sh on this machine: overlayfs if an overlay mount works in the
    # containerd root, else native (full copies, slower but works anywhere).
    snapshotter = "$snapshotter"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd on the machines Warren targets: cgroups are managed through cgroupfs.
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$HOSTS_DIR"
EOF
config_changed=1
if cmp -s "$CONFIG.tmp" "$CONFIG"; then config_changed=0; fi
mv "$CONFIG.tmp" "$CONFIG"

# --- containerd -----------------------------------------------------------------------------
if pid=$(live_pid "$CONTAINERD_PID_FILE" "$CONFIG"); then
  [ "$config_changed" -eq 0 ] ||
    echo "containers.sh: $CONFIG changed; restart containerd (containers.sh stop) to apply" >&2
  containerd_answers || die "containerd (pid $pid) is running but not answering on $SOCK; see $LOG"
  echo "containers.sh: containerd already running (pid $pid, $snapshotter)"
elif containerd_answers; then
  # Someone else's containerd holds the socket: its CRI plugin lacks our sandbox image,
  # registry and CNI settings, so the cri driver would fail in confusing ways.
  other=$(pgrep -x containerd | paste -sd, -)
  die "a containerd not started by this script (pid ${other:-unknown}) answers on $SOCK; stop it \
first, or choose another socket with WARREN_CONTAINERD_SOCK/ROOT/STATE"
else
  echo "containers.sh: starting containerd ($snapshotter snapshotter), log $LOG"
  setsid containerd --config "$CONFIG" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$CONTAINERD_PID_FILE"
  for _ in $(seq 1 60); do
    containerd_answers && break
    kill -0 "$(cat "$CONTAINERD_PID_FILE")" 2>/dev/null ||
      { tail -n 15 "$LOG" >&2; die "containerd exited during start-up; see $LOG"; }
    sleep 0.5
  done
  containerd_answers || die "containerd did not answer on $SOCK within 30s; see $LOG"
fi
# The CRI plugin fails to load (while containerd itself keeps running) on a bad config.
cri_status=$(ctr --address "$SOCK" plugins ls 2>/dev/null |
  awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" { print $NF }')
if [ "$cri_status" != ok ]; then
  die "containerd's CRI plugin is not loaded; see $LOG ($(grep -m1 'failed to load plugin' "$LOG" || true))"
fi

# --- registry -------------------------------------------------------------------------------
mkdir -p "$(dirname "$REGISTRY_CONFIG")" "$REGISTRY_ROOT"
cat >"$REGISTRY_CONFIG" <<EOF
# Written by scripts/containers.sh: Warren's image registry, loopback only, no auth.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_ROOT
  delete:
    enabled: true
http:
  addr: $REGISTRY_HOST
EOF
if pid=$(live_pid "$REGISTRY_PID_FILE" "$REGISTRY_CONFIG"); then
  registry_answers || die "registry (pid $pid) is running but not answering on $REGISTRY_HOST"
  echo "containers.sh: registry already running (pid $pid)"
elif registry_answers; then
  echo "containers.sh: a registry not started by this script answers on $REGISTRY_HOST; using it"
else
  echo "containers.sh: starting registry on $REGISTRY_HOST, log $REGISTRY_LOG"
  setsid docker-registry serve "$REGISTRY_CONFIG" >>"$REGISTRY_LOG" 2>&1 </dev/null &
  echo $! >"$REGISTRY_PID_FILE"
  for _ in $(seq 1 60); do
    registry_answers && break
    kill -0 "$(cat "$REGISTRY_PID_FILE")" 2>/dev/null ||
      { tail -n 15 "$REGISTRY_LOG" >&2; die "registry exited during start-up; see $REGISTRY_LOG"; }
    sleep 0.5
  done
  registry_answers || die "registry did not answer on http://$REGISTRY_HOST/v2/ within 30s"
fi
echo "containers.sh: ready (containerd $SOCK, registry http://$REGISTRY_HOST)"
