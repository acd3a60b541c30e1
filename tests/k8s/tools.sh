#!/usr/bin/env bash
# Builds the Kubernetes test tools once from source with the machine's Go and caches them:
#   $ZM_DEPS/k8s-<kubernetes version>/bin/{etcd,helm,kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,
#   kubelet,kubectl,containerd,containerd-shim-runc-v2,ctr,coredns} (from kube-controller-manager on: for the
#   real-cluster harness, tests/k8s/cluster/; runc and the CNI plugins are Debian's, see tools/deps.sh)
# Idempotent and instant when cached. Prints the bin directory on stdout.
#   tests/k8s/tools.sh            build what is missing
#   tests/k8s/tools.sh --bindir   only print the bin directory (exit 1 if a tool is missing)
# Sources: k8s.io/kubernetes (wrapper module tests/k8s/build/kubernetes pins the staging modules), etcd 3.5
# (go.etcd.io/etcd/server/v3), helm v3 (helm.sh/helm/v3/cmd/helm), containerd 2 (github.com/containerd/containerd/v2),
# CoreDNS (github.com/coredns/coredns); one wrapper module each under tests/k8s/build/. Needs Go and the Go module proxy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../tools/lib/common.sh"

K8S_VERSION=1.36.5
ETCD_VERSION=3.5.35
HELM_VERSION=3.21.4
BIN="$ZM_DEPS/k8s-$K8S_VERSION/bin"

# name -> "wrapper dir|package|version|extra ldflags|build tags"
declare -A TOOLS=(
  [etcd]="etcd|go.etcd.io/etcd/server/v3|$ETCD_VERSION|"
  [helm]="helm|helm.sh/helm/v3/cmd/helm|$HELM_VERSION|-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION $(
    for p in pkg/lint/rules pkg/chartutil; do  # the Kubernetes version helm assumes offline (lint, template)
      printf -- '-X helm.sh/helm/v3/%s.k8sVersionMajor=1 -X helm.sh/helm/v3/%s.k8sVersionMinor=%s ' "$p" "$p" "$(echo "$K8S_VERSION" | cut -d. -f2)"
    done)"
)
# Kubernetes' own commands: one wrapper module, the same version stamp in each (`--version` says v$K8S_VERSION).
K8S_LDFLAGS="-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*} -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl; do
  TOOLS[$cmd]="kubernetes|k8s.io/kubernetes/cmd/$cmd|$K8S_VERSION|$K8S_LDFLAGS"
done
# containerd 2 + its runc shim + ctr, static: the btrfs, devmapper and zfs snapshotters need cgo and are left out
# (the harness uses overlayfs). 2.4.2 builds and runs here too; the harness's containerd.toml names this shim
# (runtime_path), never Debian's 1.6 one on PATH, which 2.3+ cannot start.
CONTAINERD_VERSION=2.2.9
for cmd in containerd containerd-shim-runc-v2 ctr; do
  TOOLS[$cmd]="containerd|github.com/containerd/containerd/v2/cmd/$cmd|$CONTAINERD_VERSION|-X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION|no_btrfs no_devmapper no_zfs"
done
COREDNS_VERSION=1.15.0
TOOLS[coredns]="coredns|github.com/coredns/coredns|$COREDNS_VERSION|"
ORDER=(etcd helm kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl containerd
       containerd-shim-runc-v2 ctr coredns)

is_current() {  # name stamp (version + link flags: a changed recipe rebuilds)
  [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]
}

if [ "${1:-}" = "--bindir" ]; then
  for name in "${ORDER[@]}"; do
    IFS='|' read -r _ _ version ldflags tags <<<"${TOOLS[$name]}"
    is_current "$name" "$version $ldflags${tags:+ tags=$tags}" || exit 1
  done
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || die "Go is needed to build the Kubernetes test tools (apt-get install golang, or put go on PATH)"
mkdir -p "$BIN"
export GOFLAGS=-mod=mod CGO_ENABLED=0
for name in "${ORDER[@]}"; do
  IFS='|' read -r dir pkg version ldflags tags <<<"${TOOLS[$name]}"
  stamp="$version $ldflags${tags:+ tags=$tags}"
  is_current "$name" "$stamp" && continue
  log "building $name $version from source (once; cached in $BIN)"
  work=$(mktemp -d)
  cp "$here/build/$dir/go.mod" "$here/build/$dir/tools.go" "$work/"
  if ! (cd "$work" && nice go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$work/$name" "$pkg"); then
    rm -rf "$work"
    die "building $name failed (see the Go output above)"
  fi
  mv -f "$work/$name" "$BIN/$name"
  echo "$stamp" >"$BIN/.$name.version"
  rm -rf "$work"
done
echo "$BIN"
