#!/usr/bin/env bash
# Builds zeromesh's container images from the project's own build, with no registry and no container tool: a minimal
# root per image (the binaries, stripped copies; exactly the shared libraries ldd resolves for them, loader included;
# the CA bundle; /etc/passwd + /etc/group with 65532 "nonroot"; /tmp), written as an image archive that
# `ctr images import`, `podman load`, `docker load` and `kind load image-archive` accept (tools/lib/oci.py).
#
# Usage: tools/images.sh [--out DIR] [--version V] [--no-build] [mesh-agent|mesh-controller|pause ...]
#   (no image named: all three)
#   mesh-agent       docker.io/zeromesh/mesh-agent:V       runs as root (the chart makes it privileged enough for eBPF)
#   mesh-controller  docker.io/zeromesh/mesh-controller:V  mesh-controller + meshctl, user 65532, read-only root ready
#   pause            docker.io/zeromesh/pause:V            a static sandbox image for a kubelet (images/pause/pause.c)
# V defaults to the chart's appVersion. Writes DIR/<image>-V.oci.tar (DIR defaults to build/images) and keeps each
# assembled root in DIR/rootfs-<image>/: the build context of images/Containerfile.{agent,controller,pause} for people
# with a registry. Builds the binaries first (cmake --build of build/default, or of ZM_BUILD_DIR) unless --no-build;
# ZM_BUILD_LOCK names a lock file to serialize that build with others (flock).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/lib/common.sh"

usage() {  # usage EXIT: the header's usage text, on stdout for --help, on stderr for a mistake
  if [ "$1" = 0 ]; then exec 3>&1; else exec 3>&2; fi
  sed -n '/^# Usage:/,/^[^#]/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&3
  exit "$1"
}

out="$here/build/images"
version=""
build=1
images=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
    --version) [ $# -ge 2 ] || die "--version needs a value"; version=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) usage 0 ;;
    mesh-agent|mesh-controller|pause) images+=("$1"); shift ;;
    *) log "unknown argument '$1'"; usage 2 ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(mesh-agent mesh-controller pause)

if [ -z "$version" ]; then
  version=$(sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"[:space:]]*\)"\{0,1\}[[:space:]]*$/\1/p' \
    "$here/charts/zeromesh/Chart.yaml")
  [ -n "$version" ] || die "no appVersion in charts/zeromesh/Chart.yaml: pass --version"
fi
[[ "$version" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "--version '$version' is not a valid image tag"

build_dir=${ZM_BUILD_DIR:-$here/build/default}
mkdir -p "$out"
out=$(cd "$out" && pwd)

targets=()
for img in "${images[@]}"; do
  case "$img" in
    mesh-agent) targets+=(mesh-agent mesh-agent-uninstall-check) ;;
    mesh-controller) targets+=(mesh-controller meshctl) ;;
  esac
done
if [ "$build" = 1 ] && [ ${#targets[@]} -gt 0 ]; then
  [ -f "$build_dir/build.ninja" ] || die "$build_dir is not configured: run 'cmake --preset default' first"
  log "building ${targets[*]} in $build_dir"
  lock=()
  [ -n "${ZM_BUILD_LOCK:-}" ] && lock=(flock "$ZM_BUILD_LOCK")
  "${lock[@]}" cmake --build "$build_dir" --target "${targets[@]}" -j"$(nproc)"
fi

revision=$(git -C "$here" rev-parse HEAD 2>/dev/null || echo unknown)
# Reproducible: the same commit gives the same archives (SOURCE_DATE_EPOCH overrides, as elsewhere).
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || echo 0)}
source_url=$(sed -n 's/^home:[[:space:]]*//p' "$here/charts/zeromesh/Chart.yaml")

for img in "${images[@]}"; do
  root="$out/rootfs-$img"
  user=""
  case "$img" in
    mesh-agent)
      python3 "$here/tools/lib/rootfs.py" "$root" --base \
        --binary "$build_dir/agent/mesh-agent=/usr/local/bin/mesh-agent" \
        --binary "$build_dir/agent/mesh-agent-uninstall-check=/usr/local/bin/mesh-agent-uninstall-check"
      entry=/usr/local/bin/mesh-agent
      ;;
    mesh-controller)
      python3 "$here/tools/lib/rootfs.py" "$root" --base \
        --binary "$build_dir/controller/mesh-controller=/usr/local/bin/mesh-controller" \
        --binary "$build_dir/tools/meshctl/meshctl=/usr/local/bin/meshctl"
      entry=/usr/local/bin/mesh-controller
      user=65532:65532
      ;;
    pause)
      # Static, so the image is this one file. Compiled here: it is not part of the product's CMake build.
      pause_bin="$out/pause.bin"
      gcc -static -O2 -Wall -Wextra -Werror -s -o "$pause_bin" "$here/images/pause/pause.c" ||
        die "compiling images/pause/pause.c statically failed (is libc6-dev installed?)"
      python3 "$here/tools/lib/rootfs.py" "$root" --binary "$pause_bin=/pause"
      rm -f "$pause_bin"
      entry=/pause
      # As the upstream pause image: an unprivileged user that exists nowhere.
      user=65535:65535
      ;;
  esac
  args=(--name "docker.io/zeromesh/$img:$version" --entrypoint "$entry" --epoch "$epoch"
        --label "org.opencontainers.image.title=$img" --label "org.opencontainers.image.version=$version"
        --label "org.opencontainers.image.revision=$revision")
  [ -n "$source_url" ] && args+=(--label "org.opencontainers.image.source=$source_url")
  [ -n "$user" ] && args+=(--user "$user")
  [ "$img" = pause ] || args+=(--env "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
  python3 "$here/tools/lib/oci.py" "$root" "$out/$img-$version.oci.tar" "${args[@]}"
done
