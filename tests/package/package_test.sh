#!/usr/bin/env bash
# The install tree (`cmake --install` into a staging dir) and, where dpkg-deb exists, the
# .deb built by CPack: files, unit, default config, maintainer scripts, dependencies.
#   package_test.sh BUILD_DIR
set -euo pipefail
BUILD_DIR="$(cd "$1" && pwd)"
TMP="$(mktemp -d /tmp/warren-package-test.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
expect_file() { [ -f "$1" ] || fail "missing $1"; }
expect_grep() {
  grep -qE -- "$2" "$1" || fail "$1 has no line matching '$2'"
}

PREFIX="$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD_DIR/CMakeCache.txt")"
if [ "$PREFIX" = "/usr" ]; then ETC=/etc; else ETC="$PREFIX/etc"; fi

# 1. The install tree, staged (absolute paths such as /etc land under the staging dir too).
DESTDIR="$TMP/stage" cmake --install "$BUILD_DIR" >"$TMP/install.log"
S="$TMP/stage"
expect_file "$S$PREFIX/bin/warren"
[ -x "$S$PREFIX/bin/warren" ] || fail "warren is not executable"
expect_file "$S$PREFIX/bin/warren-testapp"
expect_file "$S$PREFIX/bin/warren-shim"
UNIT="$S$PREFIX/lib/systemd/system/warren.service"
expect_file "$UNIT"
expect_grep "$UNIT" '^Type=notify$'
expect_grep "$UNIT" "^ExecStart=$PREFIX/bin/warren cluster init --data-dir /var/lib/warren \\\$WARREN_OPTS$"
expect_grep "$UNIT" "^EnvironmentFile=-$ETC/warren/warren.env$"
expect_grep "$UNIT" '^KillMode=process$'
expect_grep "$UNIT" '^WatchdogSec='
expect_file "$S$ETC/warren/warren.env"
expect_grep "$S$ETC/warren/warren.env" '^WARREN_OPTS="'
expect_file "$S$PREFIX/share/doc/warren/operations.md"
# The installed binary runs and its unit's flags parse.
"$S$PREFIX/bin/warren" cluster init --help >"$TMP/help.txt" || fail "warren cluster init --help"
expect_grep "$TMP/help.txt" '--log-format'
# Every flag of the default config is one `cluster init` knows.
# shellcheck disable=SC1090
(. "$S$ETC/warren/warren.env" && for f in $WARREN_OPTS; do
  case "$f" in --*) grep -q -- "$f" "$TMP/help.txt" || echo "unknown flag $f" ;; esac
done) >"$TMP/flags.txt"
[ ! -s "$TMP/flags.txt" ] || fail "$(cat "$TMP/flags.txt")"

# 2. The .deb (CPack's DEB generator needs dpkg-deb; dependencies come from dpkg-shlibdeps).
if command -v dpkg-deb >/dev/null && command -v cpack >/dev/null; then
  cpack --config "$BUILD_DIR/CPackConfig.cmake" -B "$TMP/pkg" >"$TMP/cpack.log" 2>&1 ||
    { cat "$TMP/cpack.log"; fail "cpack"; }
  DEB="$(ls "$TMP"/pkg/*.deb 2>/dev/null | head -n 1)"
  if [ -z "$DEB" ]; then
    fail "no .deb built"
  else
    dpkg-deb -c "$DEB" >"$TMP/contents.txt"
    for f in "./usr/bin/warren" "./usr/bin/warren-shim" "./usr/bin/warren-testapp" \
      "./usr/lib/systemd/system/warren.service" \
      "./etc/warren/warren.env"; do
      # Paths follow the configured prefix; scripts/package.sh configures /usr.
      [ "$PREFIX" = "/usr" ] || break
      grep -q " $f\$" "$TMP/contents.txt" || fail "$DEB lacks $f"
    done
    dpkg-deb -f "$DEB" Package Version Architecture Depends >"$TMP/control.txt"
    expect_grep "$TMP/control.txt" '^Package: warren$'
    expect_grep "$TMP/control.txt" '^Version: [0-9]+\.[0-9]+\.[0-9]+'
    for lib in libc6 libgrpc\\+\\+1 libsystemd0 libsqlite3-0 libprotobuf; do
      expect_grep "$TMP/control.txt" "^Depends: .*$lib"
    done
    mkdir -p "$TMP/control" && dpkg-deb -e "$DEB" "$TMP/control"
    expect_grep "$TMP/control/conffiles" "^$ETC/warren/warren.env$"
    for s in postinst prerm postrm; do
      [ -x "$TMP/control/$s" ] || fail "$s missing or not executable"
      sh -n "$TMP/control/$s" || fail "$s does not parse"
    done
    mkdir -p "$TMP/x" && dpkg-deb -x "$DEB" "$TMP/x"
    # Stripped for the package, and still runs.
    "$TMP/x$PREFIX/bin/warren" --version | grep -q '^warren ' || fail "packaged warren does not run"
    cmp -s "$TMP/x$PREFIX/lib/systemd/system/warren.service" "$UNIT" ||
      fail "the packaged unit differs from the installed one"
    if command -v systemd-analyze >/dev/null; then
      # The unit as systemd reads it (ExecStart pointed at the extracted binary).
      sed "s|^ExecStart=$PREFIX/bin/warren|ExecStart=$TMP/x$PREFIX/bin/warren|" \
        "$TMP/x$PREFIX/lib/systemd/system/warren.service" >"$TMP/warren.service"
      systemd-analyze verify "$TMP/warren.service" >"$TMP/verify.txt" 2>&1 ||
        fail "systemd-analyze verify: $(cat "$TMP/verify.txt")"
    fi
    echo "package: $(basename "$DEB"), $(wc -l <"$TMP/contents.txt") entries"
    sed -n 's/^Depends: /depends: /p' "$TMP/control.txt"
  fi
else
  echo "dpkg-deb or cpack not found: the .deb is not checked"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures failed"
  exit 1
fi
echo "package test passed"
