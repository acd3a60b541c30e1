# Shared helpers for zeromesh's shell tools. Sourced, not run.
ZM_DEPS=${ZM_DEPS:-/opt/zeromesh-deps}
export ZM_DEPS
log() { printf '\033[1m[zeromesh]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[zeromesh] error:\033[0m %s\n' "$*" >&2; exit 1; }
require_root() { [ "$(id -u)" -eq 0 ] || die "this needs root (eBPF, network namespaces): run it with sudo"; }
