#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole zeromesh test suite through ctest.
#   sudo tools/test.sh                 everything: default preset (all labels), then unit tests under tsan, unit
#                                      tests and the data-plane and controller cluster tests (label sanitize) under
#                                      asan, then each fuzz target for ZM_FUZZ_SECONDS (default 30; one per core at a
#                                      time, tools/lib/fuzz-all.sh)
#   sudo tools/test.sh -L unit         pass ctest arguments for the default preset only (skips the sanitizer runs)
# Exits non-zero on any failure; ends with ctest's summary.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/tools/lib/common.sh"
require_root
cd "$here"

start=$(date +%s)
bash tools/deps.sh
bash tools/lib/host-prereqs.sh

# Leftovers of a run that was SIGKILLed (namespaces, cgroups, pins) would disturb this one.
python3 tests/cluster/zmcluster.py gc

build() {  # build PRESET
  log "configure + build ($1)"
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -j"$(nproc)"
}

# Everything a test needs is installed and built above: a test that would skip here fails instead (tests/cluster/needs.py).
export ZM_NO_SKIP=1

status=0
build default
log "ctest (default preset${*:+: $*})"
ctest --preset default -j2 "$@" || status=1

if [ $# -eq 0 ]; then
  for preset in tsan asan; do
    build "$preset"
    log "ctest ($preset preset: unit tests$([ "$preset" = asan ] && echo ', cluster tests labelled sanitize'))"
    ctest --preset "$preset" -j2 || status=1
  done
  # The short fuzzing pass: each libFuzzer target (ASan + UBSan) from its seeds, one per core at a time; a crash,
  # leak or hang fails.
  bash tools/lib/fuzz-all.sh "${ZM_FUZZ_SECONDS:-30}" || status=1
fi
log "tools/test.sh finished in $(( $(date +%s) - start ))s, status $status"
exit $status
