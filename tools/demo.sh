#!/usr/bin/env bash
# The zeromesh local demo: a two-node mesh built from network namespaces, with the real controller and agents.
#   sudo tools/demo.sh [up]            install what is missing, build, start (safe to run twice)
#   sudo tools/demo.sh verify          scripted proof: split, canary, gRPC routes, wire, STRICT, policy, status
#   sudo tools/demo.sh status          meshctl status
#   sudo tools/demo.sh meshctl CMD...  any meshctl command, e.g. routes, services, policies
#   sudo tools/demo.sh exec POD|NODE -- CMD...
#   sudo tools/demo.sh console         the web console's address and sign-in tokens (docs/ui.md)
#   sudo tools/demo.sh agent stop|start NODE   stop / restart one node's mesh-agent
#   sudo tools/demo.sh down            remove everything (no-op when nothing runs)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/lib/common.sh"
require_root
cmd=${1:-up}
[ $# -gt 0 ] && shift

if [ "$cmd" = up ]; then
  log "installing what is missing (first run: a few minutes)"
  bash "$here/tools/deps.sh" >/dev/null
  bash "$here/tools/lib/host-prereqs.sh"
  log "building (incremental)"
  cmake --preset default >/dev/null
  if ! out=$(cmake --build --preset default -j"$(nproc)" 2>&1); then
    printf '%s\n' "$out" | tail -30 >&2
    die "the build failed (output above)"
  fi
fi
export ZM_BUILD_DIR="$here/build/default"
exec python3 "$here/tools/demo/demo.py" "$cmd" "$@"
