#!/usr/bin/env bash
# Builds if needed, then runs the data-plane benchmark (direct vs zeromesh, same run). Args go to bench/dataplane.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/lib/common.sh"
require_root
bash "$here/tools/deps.sh"
bash "$here/tools/lib/host-prereqs.sh"
cmake --preset default >/dev/null && cmake --build --preset default -j"$(nproc)" >/dev/null
ZM_BUILD_DIR="$here/build/default" python3 "$here/bench/dataplane.py" "$@"
