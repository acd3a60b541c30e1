#!/usr/bin/env bash
# Installs everything zeromesh needs to build and test on Debian 12, idempotently and quickly when already done.
# Usage: tools/deps.sh            (called by tools/test.sh and tools/demo.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/lib/common.sh"

require_root

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git clang llvm clang-format clang-tidy libclang-rt-14-dev
  libbpf-dev bpftool libelf-dev zlib1g-dev libnftnl-dev libmnl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libnghttp2-dev node-llhttp libssl-dev libcurl4-openssl-dev nlohmann-json3-dev libyaml-cpp-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  iproute2 iptables nftables tcpdump iperf3 curl socat netcat-openbsd python3 procps psmisc
  dpkg-dev xz-utils sockperf openssl
  haproxy python3-matplotlib python3-yaml python3-grpcio wrk nginx-light nghttp2-client
  prometheus libcivetweb-dev
  ca-certificates containerd
  runc containernetworking-plugins conntrack
  chromium fonts-dejavu-core
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # haproxy and nginx are tools the benchmarks start inside their own namespaces: their packages must not start
  # a host-wide service on this machine's port 80. policy-rc.d refuses service starts during the install.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi

# The console front end (ui/) is built with Node.js 20+ and npm (esbuild, tsc and Playwright come from
# ui/package-lock.json through npm ci in the build). Debian 12's own nodejs is 18: take it only when none is installed,
# and say so when what is there is too old.
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  log "installing nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 20 ] ||
  log "warning: Node.js $(node --version 2>/dev/null) is older than 20: the console (ui/) will not build; install Node.js 20+"

# apt-get source needs deb-src entries, which a fresh Debian 12 does not list.
ensure_deb_src() {
  [ -z "$(apt-get source --print-uris "$1" 2>/dev/null | grep dsc)" ] || return 0
  cat >/etc/apt/sources.list.d/zeromesh-deb-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt-get update -qq
}

# build_from_debian_source PACKAGE VERSION PREFIX DIR SRC_VAR: fetches Debian's source package PACKAGE (VERSION,
# else, when a point release replaced it on the mirror, the current one of bookworm), builds it with the CMake project
# third_party/DIR (its source directory passed as -DSRC_VAR=...) and installs it into PREFIX, once: PREFIX/.done
# caches it.
build_from_debian_source() {
  local pkg=$1 version=$2 prefix=$3 dir=$4 src_var=$5
  [ ! -f "$prefix/.done" ] || return 0
  log "building $pkg $version (static) into $prefix"
  ensure_deb_src "$pkg"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source -qq "$pkg=$version" >/dev/null 2>&1 ||
     { log "warning: $pkg $version is not on the mirror: building its current source"
       apt-get source -qq "$pkg" >/dev/null 2>&1; })
  local srcdir
  srcdir=$(find "$work" -maxdepth 1 -type d -name "$pkg-*" | head -1)
  [ -n "$srcdir" ] || die "could not fetch $pkg's source package"
  cmake -S "$here/third_party/$dir" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -D"$src_var=$srcdir" -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
  cmake --build "$work/build" -j"$(nproc)" >/dev/null
  cmake --install "$work/build" >/dev/null
  touch "$prefix/.done"
  rm -rf "$work"
  trap - EXIT
}

# BoringSSL: static, hidden symbols (docs: third_party/boringssl/CMakeLists.txt). Cached under $ZM_DEPS.
BSSL_VERSION=13.0.0+r24
BSSL_PREFIX="$ZM_DEPS/boringssl-$BSSL_VERSION"
build_from_debian_source android-platform-external-boringssl 13.0.0+r24-2 "$BSSL_PREFIX" boringssl BORINGSSL_SRC
# civetweb with IPv6 (Debian's libcivetweb has none): static, hidden symbols (third_party/civetweb/CMakeLists.txt).
CIVETWEB_VERSION=1.15+dfsg-4
build_from_debian_source civetweb "$CIVETWEB_VERSION" "$ZM_DEPS/civetweb-$CIVETWEB_VERSION" civetweb CIVETWEB_SRC
# Kubernetes test tools (etcd, helm, kube-apiserver; for the real cluster also kubelet, controller-manager, scheduler,
# kube-proxy, kubectl, containerd 2 + shim + ctr, CoreDNS): built once from source with Go, then cached.
if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then
  # Not fatal: without them only the k8s tests fail (and say why); everything else still builds and runs.
  PATH="$PATH:/usr/local/go/bin" bash "$here/tests/k8s/tools.sh" >/dev/null ||
    log "warning: building the Kubernetes test tools failed (see above): the k8s tests will fail"
else
  log "warning: Go is not installed: the k8s tests cannot build their Kubernetes tools and will fail"
fi
# The OpenTelemetry Collector the tracing test exports to (traffic_tracing): built once with Go, cached like the above.
if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then
  PATH="$PATH:/usr/local/go/bin" bash "$here/tools/lib/otelcol.sh" >/dev/null ||
    log "warning: building the OpenTelemetry Collector failed (see above): traffic_tracing will fail"
else
  log "warning: Go is not installed: traffic_tracing cannot build its OpenTelemetry Collector and will fail"
fi
log "dependencies ready"
