#!/usr/bin/env bash
# Data-plane benchmark: direct vs zeromesh vs HAProxy mTLS on a 2-node simulated cluster, interleaved rounds.
#   sudo bench/run.sh [--quick] [--json FILE] [--plot] [other bench/dataplane.py options, e.g. --perf FILE]
# Builds what it needs first (tools/deps.sh, cmake preset "default", targets mesh-agent + bench tools).
# --quick: 3 rounds x 2 s (under 5 minutes); default: 5 rounds x 5 s. --plot: also regenerate docs/img/*.png.
# The agents' memory alone, with a breakdown per phase (about 12 s, after building): sudo /usr/bin/python3 bench/memory.py
# The agents' CPU at 1,000 requests/s alone (about 45 s; --perf DIR: syscalls per request): sudo /usr/bin/python3 bench/steady.py
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/lib/common.sh"
require_root
plot=0 json="" args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --plot) plot=1 ;;
    --json) json=$2; args+=("$1" "$2"); shift ;;
    --json=*) json=${1#--json=}; args+=("--json" "$json") ;;
    *) args+=("$1") ;;
  esac
  shift
done
if [ "$plot" = 1 ] && [ -z "$json" ]; then json=$(mktemp --suffix=.json); args+=("--json" "$json"); fi
bash "$here/tools/deps.sh"
bash "$here/tools/lib/host-prereqs.sh"
build=${ZM_BUILD_DIR:-$here/build/default}
if [ ! -f "$build/build.ninja" ]; then
  log "configuring $build (preset default)"
  (cd "$here" && cmake --preset default >/dev/null)
fi
log "building mesh-agent and the benchmark tools"
cmake --build "$build" --target mesh-agent bench-tools -j"$(nproc)" >/dev/null
py=/usr/bin/python3  # Debian's python3 (python3-matplotlib for --plot); the benchmark itself needs only stdlib
ZM_BUILD_DIR="$build" PYTHONDONTWRITEBYTECODE=1 "$py" "$here/bench/dataplane.py" "${args[@]}"
if [ "$plot" = 1 ]; then
  "$py" "$here/bench/plot.py" "$json" --out "$here/docs/img"
fi
