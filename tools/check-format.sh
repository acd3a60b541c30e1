#!/usr/bin/env bash
# Fails when a C/C++/proto source in the repository is not clang-formatted (run `tools/check-format.sh --fix` to fix).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.h' '*.cc' '*.cpp' '*.c' '*.proto' | grep -v '^third_party/' || true)
[ ${#files[@]} -gt 0 ] || { echo "no sources to check"; exit 0; }
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
clang-format --dry-run --Werror "${files[@]}"
echo "format: ${#files[@]} files clean"
