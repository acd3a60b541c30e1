#!/usr/bin/env bash
# Runs one libFuzzer target (fuzz/) for SECONDS from its seed corpus; exits non-zero on a crash, leak or timeout.
#   tools/fuzz.sh TARGET SECONDS     e.g. tools/fuzz.sh fuzz_hbone_headers 600
#   tools/fuzz.sh --list             the targets
# Builds the fuzz preset (clang, ASan + UBSan) first (unless ZM_FUZZ_PREBUILT=1). New inputs go to a scratch corpus, not into the repository;
# a crashing input is kept in build/fuzz/artifacts/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
targets=$(sed -n 's/^zm_fuzz_target(\([a-z_]*\).*/\1/p' fuzz/CMakeLists.txt)
if [ "${1:-}" = "--list" ]; then
  echo "$targets"
  exit 0
fi
if [ $# -ne 2 ] || ! grep -qx "$1" <<<"$targets" || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: tools/fuzz.sh TARGET SECONDS   (targets: $(echo $targets))" >&2
  exit 2
fi
target=$1 seconds=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# ZM_FUZZ_PREBUILT=1: the caller built the fuzz preset already (tools/lib/fuzz-all.sh runs targets in parallel).
if [ "${ZM_FUZZ_PREBUILT:-}" != 1 ] &&
  ! { cmake --preset fuzz && cmake --build --preset fuzz --target "$target"; } >"$scratch/build.log" 2>&1; then
  tail -n 40 "$scratch/build.log" >&2
  echo "fuzz: building $target failed" >&2
  exit 1
fi
mkdir "$scratch/corpus"
mkdir -p build/fuzz/artifacts
seeds="fuzz/corpus/${target#fuzz_}"
echo "fuzz: $target for ${seconds}s (seeds: $seeds)"
"build/fuzz/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix=build/fuzz/artifacts/ "$scratch/corpus" "$seeds" 2>&1 | tail -n 25
