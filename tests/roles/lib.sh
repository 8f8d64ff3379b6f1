# Helpers of the role scripts (sourced). `fail` prints its message and the tail of every log in
# $TMP, then exits 1.
fail() {
  echo "FAIL: $*"
  for f in "$TMP"/*.log; do
    [ -f "$f" ] || continue
    echo "--- $f"
    tail -n 20 "$f"
  done
  exit 1
}

# Polls a command (up to $1 tenths of a second) until it succeeds.
poll() {
  local n=$1
  shift
  for _ in $(seq 1 "$n"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}
