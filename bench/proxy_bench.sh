#!/usr/bin/env bash
# Warren's HTTP proxy vs nginx as reverse proxy in front of the same two warren-testapp backends,
# measured with wrk. Prints a markdown table (requests/s, p99) and the ratios.
#   bench/proxy_bench.sh [BUILD_DIR]   (needs warren-testapp and proxy_server_bench built)
# Env: DURATION (default 10s), THREADS (wrk threads, 2), CONNECTIONS (50), PROXY_THREADS (2),
# BASELINE (another proxy_server_bench, e.g. built from main: measured in the same run, for a
# before/after of a change to the proxy), TLS=1 (TLS termination: a self-signed certificate made
# for the run; Warren runs its HTTPS ingress listener with one rule for 127.0.0.1, nginx
# `listen ... ssl` with the same certificate; wrk keeps its connections, so handshakes are not
# measured).
set -euo pipefail
BUILD=${1:-build}
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-50}
PROXY_THREADS=${PROXY_THREADS:-2}
for bin in "$BUILD/warren-testapp" "$BUILD/proxy_server_bench"; do
  [ -x "$bin" ] || { echo "proxy_bench: $bin not built" >&2; exit 1; }
done
BASELINE=${BASELINE:-}
TLS=${TLS:-0}
case "$TLS" in 0 | 1) ;; *) echo "proxy_bench: TLS must be 0 or 1, got \"$TLS\"" >&2; exit 1 ;; esac
if [ -n "$BASELINE" ] && [ ! -x "$BASELINE" ]; then
  echo "proxy_bench: BASELINE $BASELINE is not an executable" >&2
  exit 1
fi
command -v wrk >/dev/null || { echo "proxy_bench: wrk not installed (scripts/setup.sh)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "proxy_bench: nginx not installed (scripts/setup.sh)" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits (bounded) for a line in a log file and prints it.
wait_line() {
  for _ in $(seq 100); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1"; return 0; fi
    sleep 0.1
  done
  echo "proxy_bench: no \"$2\" in $1" >&2; cat "$1" >&2; return 1
}

SCHEME=http
TLS_ARGS=()
NGINX_SSL=""
if [ "$TLS" = 1 ]; then
  command -v openssl >/dev/null || { echo "proxy_bench: openssl not installed" >&2; exit 1; }
  # P-256 like a typical ACME certificate; the name is what wrk sends as SNI (the URL's host).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
  SCHEME=https
  TLS_ARGS=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem")
  NGINX_SSL=" ssl"
fi

BACKENDS=()
for i in 1 2; do
  ip=127.0.0.$((100 + i))
  WARREN_TASK_IP=$ip WARREN_TASK_PORT=0 WARREN_TASK_ID=b$i "$BUILD/warren-testapp" >"$TMP/app$i.log" 2>&1 &
  PIDS+=($!)
  line=$(wait_line "$TMP/app$i.log" "listening on")
  BACKENDS+=("${line##* }")
done

WPORT=$(free_port)
args=()
for b in "${BACKENDS[@]}"; do args+=(--backend "$b"); done
"$BUILD/proxy_server_bench" --listen "127.0.0.1:$WPORT" --threads "$PROXY_THREADS" "${args[@]}" \
  "${TLS_ARGS[@]}" >"$TMP/warren.log" 2>&1 &
PIDS+=($!)
wait_line "$TMP/warren.log" "listening on" >/dev/null
if [ -n "$BASELINE" ]; then
  BPORT=$(free_port)
  "$BASELINE" --listen "127.0.0.1:$BPORT" --threads "$PROXY_THREADS" "${args[@]}" \
    "${TLS_ARGS[@]}" >"$TMP/baseline.log" 2>&1 &
  PIDS+=($!)
  wait_line "$TMP/baseline.log" "listening on" >/dev/null
fi

NPORT=$(free_port)
mkdir -p "$TMP/nginx"
{
  echo "worker_processes $PROXY_THREADS;"
  echo "error_log $TMP/nginx/error.log warn;"
  echo "pid $TMP/nginx/nginx.pid;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  echo "  access_log off;"
  echo "  client_body_temp_path $TMP/nginx/body; proxy_temp_path $TMP/nginx/proxy;"
  echo "  fastcgi_temp_path $TMP/nginx/fcgi; uwsgi_temp_path $TMP/nginx/uwsgi; scgi_temp_path $TMP/nginx/scgi;"
  echo "  upstream backends {"
  for b in "${BACKENDS[@]}"; do echo "    server $b;"; done
  echo "    keepalive 64;"
  echo "  }"
  echo "  server {"
  echo "    listen 127.0.0.1:$NPORT$NGINX_SSL;"
  if [ "$TLS" = 1 ]; then
    echo "    ssl_certificate $TMP/cert.pem; ssl_certificate_key $TMP/key.pem;"
    echo "    ssl_protocols TLSv1.2 TLSv1.3;"
  fi
  echo "    location / {"
  echo "      proxy_pass http://backends;"
  echo "      proxy_http_version 1.1;"
  echo "      proxy_set_header Connection \"\";"
  echo "      proxy_set_header Host \$host;"
  echo "      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
  echo "    }"
  echo "  }"
  echo "}"
} >"$TMP/nginx/nginx.conf"
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  curl -fsS -k -o /dev/null "$SCHEME://127.0.0.1:$NPORT/" 2>/dev/null && break
  sleep 0.1
done

# wrk prints p99 as e.g. "99%    3.21ms"; converts to milliseconds.
run_wrk() {
  local out
  out=$(timeout 120 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$SCHEME://127.0.0.1:$1/")
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  echo "$rps $p99 ${errors:-none}"
}

# Warm up, then measure (nginx, the baseline, Warren: one after the other, same load).
DURATION=2s run_wrk "$WPORT" >/dev/null
DURATION=2s run_wrk "$NPORT" >/dev/null
[ -z "$BASELINE" ] || DURATION=2s run_wrk "$BPORT" >/dev/null
read -r n_rps n_p99 n_err <<<"$(run_wrk "$NPORT")"
if [ -n "$BASELINE" ]; then read -r b_rps b_p99 b_err <<<"$(run_wrk "$BPORT")"; fi
read -r w_rps w_p99 w_err <<<"$(run_wrk "$WPORT")"

if [ "$TLS" = 1 ]; then
  # What each side negotiated with an OpenSSL client (wrk's library) offering its defaults.
  tls_of() {
    openssl s_client -connect "127.0.0.1:$1" -servername 127.0.0.1 </dev/null 2>/dev/null |
      awk '/^New, / {print $2, $NF; exit}'
  }
  echo "TLS termination: Warren's HTTPS ingress ($(tls_of "$WPORT")), nginx ($(tls_of "$NPORT")); P-256 certificate; handshakes not measured (keep-alive)"
fi
echo "Proxy: wrk -t$THREADS -c$CONNECTIONS -d$DURATION $SCHEME, 2 warren-testapp backends, $PROXY_THREADS proxy threads/workers, $(nproc) cores"
echo
echo "| Proxy | Requests/s | p99 latency (ms) | Errors |"
echo "| --- | ---: | ---: | --- |"
echo "| nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') | $n_rps | $n_p99 | $n_err |"
[ -z "$BASELINE" ] || echo "| Warren baseline ($BASELINE) | $b_rps | $b_p99 | $b_err |"
echo "| Warren | $w_rps | $w_p99 | $w_err |"
echo
awk -v wr="$w_rps" -v nr="$n_rps" -v wp="$w_p99" -v np="$n_p99" 'BEGIN {
  printf "Warren / nginx: throughput %.2fx (goal >= 1.0x, issue 15), p99 %.2fx (goal <= 1.2x)\n", wr / nr, wp / np }'
if [ -n "$BASELINE" ]; then
  awk -v wr="$w_rps" -v nr="$n_rps" -v wp="$w_p99" -v np="$n_p99" -v br="$b_rps" -v bp="$b_p99" 'BEGIN {
    printf "Baseline / nginx: throughput %.2fx, p99 %.2fx\n", br / nr, bp / np
    printf "Warren / baseline: throughput %.2fx, p99 %.2fx\n", wr / br, wp / bp }'
fi
