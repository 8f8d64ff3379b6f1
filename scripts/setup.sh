#!/usr/bin/env bash
# Installs the Debian 12 packages Warren needs to build, test, benchmark and run its demo.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libsqlite3-dev libjemalloc-dev libssl-dev libboost-dev libgtest-dev libgmock-dev libbenchmark-dev libsystemd-dev
  clang-format curl procps iproute2 iptables python3 nginx wrk stress-ng
  clang libclang-rt-14-dev dnsutils dnsmasq-base dnsperf
  containerd runc containernetworking-plugins docker-registry skopeo umoci jq
  # etcd: the store of several managers; its API .proto files generate the C++ client.
  etcd-server etcd-client golang-etcd-server-dev
  # ACME: pebble (and pebble-challtestsrv, its DNS) for the ingress's ACME e2e test.
  pebble
  # The dashboard's e2e test: headless Chromium driven through Selenium, trusting the
  # cluster CA through an NSS database (certutil).
  chromium chromium-driver python3-selenium libnss3-tools
)

# Installed without their recommended packages: wireguard-tools recommends a kernel image.
# wireguard-go and wg: `worker --encrypt` on a kernel without WireGuard; tcpdump: its e2e test
# (only tunnel packets on the wire between the hosts).
LEAN_PACKAGES=(wireguard-go wireguard-tools tcpdump)

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
updated=0
# install [apt-get install options...] -- packages...: those not installed yet.
install() {
  local opts=() missing=()
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: installing ${missing[*]}"
  if [ "$updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null
}
install -- "${PACKAGES[@]}"
install --no-install-recommends -- "${LEAN_PACKAGES[@]}"
