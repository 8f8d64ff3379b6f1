#!/usr/bin/env bash
# Builds Warren's OCI images from BUILD_DIR with umoci (no Docker engine needed) and pushes them
# to the local registry started by scripts/containers.sh:
#   $REGISTRY/warren/pause:1    /pause (static warren-pause), the CRI sandbox image
#   $REGISTRY/warren/testapp:1  /usr/local/bin/warren-testapp plus the shared libraries it loads
# Images are reproducible (fixed timestamps), so an unchanged binary gives the same
# digest and its push is skipped. Usage: build-images.sh BUILD_DIR
set -euo pipefail

die() {
  echo "build-images.sh: $*" >&2
  exit 1
}

[ $# -eq 1 ] || die "usage: build-images.sh BUILD_DIR"
BUILD_DIR=$(cd "$1" 2>/dev/null && pwd) || die "BUILD_DIR $1 does not exist"
REGISTRY="${WARREN_REGISTRY:-127.0.0.1:5000}"
WORK="$BUILD_DIR/images"
EPOCH=1970-01-01T00:00:00Z

for bin in umoci skopeo curl ldd; do
  command -v "$bin" >/dev/null || die "$bin not found; run scripts/setup.sh"
done
for target in warren-pause warren-testapp; do
  [ -x "$BUILD_DIR/$target" ] || die "$BUILD_DIR/$target not built (ninja -C $BUILD_DIR $target)"
done
curl -fs --max-time 2 "http://$REGISTRY/v2/" >/dev/null ||
  die "no registry answering at http://$REGISTRY/v2/ (run scripts/containers.sh)"

# Copies $1 to $2 without debug info when strip is available (it only makes images larger).
install_binary() {
  mkdir -p "$(dirname "$2")"
  if command -v strip >/dev/null; then
    strip --strip-debug -o "$2" "$1"
  else
    cp "$1" "$2"
  fi
  chmod 0755 "$2"
}

# Minimal /etc and /tmp so programs that look up users or write temp files behave.
add_base_files() {
  local rootfs=$1
  mkdir -p "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  echo "root:x:0:0:root:/root:/sbin/nologin" >"$rootfs/etc/passwd"
  echo "root:x:0:" >"$rootfs/etc/group"
}

# Packs directory $2 as the single layer of image $1 (tag in $WORK/oci) with entrypoint $3.
pack() {
  local name=$1 rootfs=$2 entrypoint=$3
  # Fixed mtimes so the layer (and thus the digest) depends only on file contents.
  find "$rootfs" -exec touch -h -d "$EPOCH" {} +
  umoci new --image "$WORK/oci:$name"
  umoci insert --history.created "$EPOCH" --history.created_by "scripts/build-images.sh" \
    --image "$WORK/oci:$name" "$rootfs" /
  umoci config --no-history --image "$WORK/oci:$name" --created "$EPOCH" --os linux \
    --architecture amd64 --config.entrypoint "$entrypoint" --config.workingdir /
}

# Pushes tag $1 of the layout to $REGISTRY/warren/$1:$2 unless the registry has that digest.
push() {
  local name=$1 tag=$2 ref="$REGISTRY/warren/$1:$2" local_digest remote_digest
  local_digest=$(jq -r --arg t "$name" \
    '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' \
    "$WORK/oci/index.json")
  remote_digest=$(curl -fsS --max-time 5 -o /dev/null -D - \
    -H "Accept: application/vnd.oci.image.manifest.v1+json" \
    "http://$REGISTRY/v2/warren/$name/manifests/$tag" 2>/dev/null |
    tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }') || true
  if [ -n "$local_digest" ] && [ "$local_digest" = "$remote_digest" ]; then
    echo "build-images.sh: $ref@$local_digest (unchanged, not pushed)"
    return
  fi
  skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/oci:$name" "docker://$ref"
  echo "build-images.sh: pushed $ref@$local_digest"
  # Workers pull a tag only when containerd lacks it: drop the stale copy so the next task
  # start pulls the new image (running containers keep theirs).
  if command -v ctr >/dev/null && [ -S "${WARREN_CONTAINERD_SOCK:-/run/containerd/containerd.sock}" ]; then
    ctr --address "${WARREN_CONTAINERD_SOCK:-/run/containerd/containerd.sock}" -n k8s.io \
      images rm "$ref" >/dev/null 2>&1 || true
  fi
}

rm -rf "$WORK"
mkdir -p "$WORK"
umoci init --layout "$WORK/oci"

# --- pause: one static binary -----------------------------------------------------------
pause_root="$WORK/pause-rootfs"
install_binary "$BUILD_DIR/warren-pause" "$pause_root/pause"
add_base_files "$pause_root"
pack pause "$pause_root" /pause

# --- testapp: the binary and every shared library (and the loader) ldd reports ---------------
testapp_root="$WORK/testapp-rootfs"
install_binary "$BUILD_DIR/warren-testapp" "$testapp_root/usr/local/bin/warren-testapp"
# ldd lines: "name => /path (addr)", "/path (addr)" for the loader, "name (addr)" for the vDSO.
libs=$(ldd "$BUILD_DIR/warren-testapp" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || die "ldd listed no libraries for warren-testapp (is it static?)"
for lib in $libs; do
  mkdir -p "$testapp_root$(dirname "$lib")"
  cp -L "$lib" "$testapp_root$lib"
done
add_base_files "$testapp_root"
pack testapp "$testapp_root" /usr/local/bin/warren-testapp

push pause 1
push testapp 1
