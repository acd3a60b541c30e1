#!/usr/bin/env bash
# ctest console_ui: brings up the demo cluster (prefix zmui), runs the Playwright specs of ui/tests against its
# console in Debian's headless Chromium, and always tears the cluster down. Anything missing is a failure, never a
# skip: Chromium, the built console, Playwright, the console's address and tokens.
#   sudo ZM_BUILD_DIR=build/default tests/ui/run_console_ui.sh [playwright test args, e.g. -g wizard]
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${ZM_BUILD_DIR:-$repo/build/default}
fail() { printf 'console_ui: FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (the demo cluster uses network namespaces and eBPF)"
chromium=${ZM_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || fail "$chromium is missing: run tools/deps.sh (Debian package chromium)"
[ -f "$build/ui/dist/index.html" ] && [ -f "$build/ui/dist/assets/app.js" ] ||
  fail "the console is not built in $build/ui/dist: cmake --build --preset default --target zm_console_assets"
[ -x "$build/controller/mesh-controller" ] || fail "$build/controller/mesh-controller is not built"
playwright=$repo/ui/node_modules/@playwright/test/cli.js
[ -f "$playwright" ] || fail "Playwright is not installed in ui/node_modules (the zm_console_assets build runs npm ci)"

export ZM_BUILD_DIR=$build ZM_DEMO_PREFIX=${ZM_DEMO_PREFIX:-zmui} ZM_CHROMIUM=$chromium
demo() { python3 "$repo/tools/demo/demo.py" "$@"; }
trap 'demo down >/dev/null 2>&1 || true' EXIT
demo down >/dev/null 2>&1 || true  # a run killed before its trap
demo up

# console-env prints NAME=value lines; take exactly the three we need (no eval of the output).
while IFS= read -r line; do
  line=${line#export }
  name=${line%%=*}
  value=${line#*=}
  value=${value#[\"\']}
  value=${value%[\"\']}
  case $name in
    ZM_CONSOLE_URL | ZM_CONSOLE_TOKEN | ZM_CONSOLE_VIEWER_TOKEN) export "$name=$value" ;;
  esac
done < <(demo console-env)
for v in ZM_CONSOLE_URL ZM_CONSOLE_TOKEN ZM_CONSOLE_VIEWER_TOKEN; do
  [ -n "${!v:-}" ] || fail "'demo.py console-env' did not print $v"
done
curl -fsS -o /dev/null --max-time 5 "$ZM_CONSOLE_URL/" || fail "the console at $ZM_CONSOLE_URL does not answer"

cd "$repo/ui"
export ZM_UI_RESULTS=$build/ui/test-results
node "$playwright" test "$@"
