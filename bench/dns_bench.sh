#!/usr/bin/env bash
# DNS queries/s with dnsperf: Warren's service DNS vs dnsmasq serving the same A records
# (SERVICES names × ENDPOINTS addresses each). Prints markdown table rows and the ratio.
# Usage: bench/dns_bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
seconds="${2:-10}"
services=50
endpoints=3
for tool in dnsperf dnsmasq; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
    { echo "dns_bench: $tool missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
DNSMASQ="$(command -v dnsmasq || echo /usr/sbin/dnsmasq)"
[ -x "$build/dns_server_bench" ] || { echo "dns_bench: build $build/dns_server_bench first" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for ((s = 0; s < services; s++)); do
  echo "svc$s.warren A" >>"$work/queries"
  for ((e = 1; e <= endpoints; e++)); do echo "127.1.$s.$e svc$s.warren" >>"$work/hosts"; done
done

# Runs dnsperf against PORT; prints queries/s.
measure() {
  dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries" -l "$seconds" -c 4 -q 200 2>&1 |
    awk '/Queries per second:/ {print $4}'
}

wait_udp() {
  for _ in $(seq 100); do
    dig +time=1 +tries=1 +short @127.0.0.1 -p "$1" svc0.warren A 2>/dev/null | grep -q 127.1.0 && return 0
    sleep 0.05
  done
  echo "dns_bench: server on port $1 did not answer" >&2
  return 1
}

port=$(free_port)
"$build/dns_server_bench" "$port" "$services" "$endpoints" "${WARREN_DNS_THREADS:-2}" >"$work/warren.log" 2>&1 &
pids+=($!)
wait_udp "$port"
warren_qps=$(measure "$port")
kill "${pids[-1]}"

port=$(free_port)
timeout $((seconds + 30)) "$DNSMASQ" --no-daemon --port "$port" --listen-address 127.0.0.1 \
  --bind-interfaces --no-resolv --no-hosts --addn-hosts "$work/hosts" --user=root \
  --log-facility=- >"$work/dnsmasq.log" 2>&1 &
pids+=($!)
wait_udp "$port"
dnsmasq_qps=$(measure "$port")
kill "${pids[-1]}"

echo "| DNS server | queries/s (dnsperf, ${seconds}s, $services names × $endpoints A) |"
echo "|---|---|"
printf '| warren dns (%s threads) | %.0f |\n' "${WARREN_DNS_THREADS:-2}" "$warren_qps"
printf '| dnsmasq %s | %.0f |\n' "$("$DNSMASQ" --version | awk 'NR==1 {print $3}')" "$dnsmasq_qps"
awk -v w="$warren_qps" -v d="$dnsmasq_qps" 'BEGIN { printf "ratio warren/dnsmasq: %.2fx\n", w / d }'
