#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole zeromesh test suite through ctest.
#   sudo tools/test.sh                 everything: default preset (all labels; `background` ones in a second ctest
#                                      alongside), then unit tests under tsan, unit
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
# Each step says when it began, so a slow CI run shows which part grew.
step() { log "$* (at $(( $(date +%s) - start ))s)"; }
bash tools/deps.sh
bash tools/lib/host-prereqs.sh

# Leftovers of a run that was SIGKILLed (namespaces, cgroups, pins) would disturb this one.
python3 tests/cluster/zmcluster.py gc

build() {  # build PRESET [TARGET]
  step "configure + build ($1${2:+, target $2})"
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -j"$(nproc)" ${2:+--target "$2"}
}

# Everything a test needs is installed and built above: a test that would skip here fails instead (tests/cluster/needs.py).
export ZM_NO_SKIP=1

status=0
build default
if [ $# -eq 0 ]; then
  # Tests labelled `background` spend minutes waiting for certificates to expire; they run one after another in a
  # second ctest beside the rest (about 8 minutes less wall time), their output printed when both are done.
  bg_log=$(mktemp /tmp/zm-ctest-background.XXXXXX)
  # Test lists discovered at test time (gtest_discover_tests DISCOVERY_MODE PRE_TEST) are written by whichever ctest
  # reads them first when the binary is newer: two ctests starting at once raced on one half-written list (CMake
  # "Parse error. Function missing ending ')'"). One listing first writes them all; then both only read.
  ctest --preset default -N >/dev/null
  step "ctest (default preset; label background in parallel, output in $bg_log)"
  ctest --preset default -L background >"$bg_log" 2>&1 &
  bg_pid=$!
  ctest --preset default -j2 -LE background || status=1
  wait "$bg_pid" || status=1
  step "ctest (default preset, label background)"
  cat "$bg_log"
  rm -f "$bg_log"
else
  step "ctest (default preset: $*)"
  ctest --preset default -j2 "$@" || status=1
fi

if [ $# -eq 0 ]; then
  for preset in tsan asan; do
    # tsan runs the unit tests only, so it builds only their targets (tests/unit: zm_unit_tests).
    if [ "$preset" = tsan ]; then build tsan zm_unit_tests; else build asan; fi
    step "ctest ($preset preset: unit tests$([ "$preset" = asan ] && echo ', cluster tests labelled sanitize'))"
    ctest --preset "$preset" -j2 || status=1
  done
  # The short fuzzing pass: each libFuzzer target (ASan + UBSan) from its seeds, one per core at a time; a crash,
  # leak or hang fails.
  step "fuzz targets"
  bash tools/lib/fuzz-all.sh "${ZM_FUZZ_SECONDS:-30}" || status=1
fi
log "tools/test.sh finished in $(( $(date +%s) - start ))s, status $status"
exit $status
