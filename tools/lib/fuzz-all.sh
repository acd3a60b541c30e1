#!/usr/bin/env bash
# The short fuzzing pass of tools/test.sh: builds every libFuzzer target once, then runs each for SECONDS from its
# seeds, one per core at a time (each target gets the same time as one after the other, in a fraction of the wall
# time). Prints each target's output in list order; exits non-zero when any target crashed, leaked or hung.
#   tools/lib/fuzz-all.sh SECONDS
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/tools/lib/common.sh"
cd "$here"
seconds=${1:?usage: tools/lib/fuzz-all.sh SECONDS}
targets=$(bash tools/fuzz.sh --list)

log "build the fuzz targets"
if ! { cmake --preset fuzz >/dev/null && cmake --build --preset fuzz -j"$(nproc)"; }; then
  echo "fuzz: building the fuzz preset failed" >&2
  exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
slots=$(nproc)
for target in $targets; do
  # The build above is done: tools/fuzz.sh must not configure or build the shared build dir from parallel runs.
  (ZM_FUZZ_PREBUILT=1 bash tools/fuzz.sh "$target" "$seconds" >"$out/$target.log" 2>&1; echo $? >"$out/$target.rc") &
  while [ "$(jobs -rp | wc -l)" -ge "$slots" ]; do wait -n; done
done
wait

status=0
for target in $targets; do
  log "fuzz $target (${seconds} s)"
  cat "$out/$target.log"
  if [ "$(cat "$out/$target.rc" 2>/dev/null)" != 0 ]; then
    echo "fuzz: $target FAILED" >&2
    status=1
  fi
done
exit $status
