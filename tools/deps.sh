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

# BoringSSL: static, hidden symbols, from Debian's source package. Cached under $ZM_DEPS.
BSSL_VERSION=13.0.0+r24
BSSL_PREFIX="$ZM_DEPS/boringssl-$BSSL_VERSION"
if [ ! -f "$BSSL_PREFIX/.done" ]; then
  log "building BoringSSL $BSSL_VERSION (static, hidden visibility) into $BSSL_PREFIX"
  ensure_deb_src android-platform-external-boringssl
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get source -qq "android-platform-external-boringssl=13.0.0+r24-2" >/dev/null 2>&1 ||
     apt-get source -qq android-platform-external-boringssl >/dev/null 2>&1)
  srcdir=$(find "$work" -maxdepth 1 -type d -name 'android-platform-external-boringssl-*' | head -1)
  [ -n "$srcdir" ] || die "could not fetch BoringSSL's source package"
  cmake -S "$here/third_party/boringssl" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DBORINGSSL_SRC="$srcdir" -DCMAKE_INSTALL_PREFIX="$BSSL_PREFIX" >/dev/null
  cmake --build "$work/build" -j"$(nproc)" >/dev/null
  cmake --install "$work/build" >/dev/null
  touch "$BSSL_PREFIX/.done"
  rm -rf "$work"
  trap - EXIT
fi
# civetweb with IPv6 (Debian's libcivetweb has none): static, hidden symbols, from Debian's source package. Cached
# under $ZM_DEPS; see third_party/civetweb/CMakeLists.txt.
CIVETWEB_VERSION=1.15+dfsg-4
CIVETWEB_PREFIX="$ZM_DEPS/civetweb-$CIVETWEB_VERSION"
if [ ! -f "$CIVETWEB_PREFIX/.done" ]; then
  log "building civetweb $CIVETWEB_VERSION (static, IPv6) into $CIVETWEB_PREFIX"
  ensure_deb_src civetweb
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # The pinned version, else (a point release replaced it on the mirror) the current one of bookworm.
  (cd "$work" && apt-get source -qq "civetweb=$CIVETWEB_VERSION" >/dev/null 2>&1 ||
     { log "warning: civetweb $CIVETWEB_VERSION is not on the mirror: building its current source"
       apt-get source -qq civetweb >/dev/null 2>&1; })
  srcdir=$(find "$work" -maxdepth 1 -type d -name 'civetweb-*' | head -1)
  [ -n "$srcdir" ] || die "could not fetch civetweb's source package"
  cmake -S "$here/third_party/civetweb" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCIVETWEB_SRC="$srcdir" -DCMAKE_INSTALL_PREFIX="$CIVETWEB_PREFIX" >/dev/null
  cmake --build "$work/build" -j"$(nproc)" >/dev/null
  cmake --install "$work/build" >/dev/null
  touch "$CIVETWEB_PREFIX/.done"
  rm -rf "$work"
  trap - EXIT
fi
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
