#!/usr/bin/env bash
# Checks (and where it is ours to do, prepares) what the kernel side needs: bpffs mounted, cgroup v2, BTF.
# Touches nothing in the root network namespace.
set -euo pipefail
. "$(dirname "$0")/common.sh"
[ -r /sys/kernel/btf/vmlinux ] || die "this kernel has no BTF (/sys/kernel/btf/vmlinux): zeromesh needs CONFIG_DEBUG_INFO_BTF=y"
grep -q ' cgroup2 ' /proc/self/mounts || die "no cgroup v2 mount found: zeromesh needs cgroup v2"
if ! mountpoint -q /sys/fs/bpf; then
  log "mounting bpffs at /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs at /sys/fs/bpf"
fi
