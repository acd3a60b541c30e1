#!/usr/bin/env bash
# npm ci for ui/, only when package-lock.json changed since the last install. ui/node_modules is shared by every
# build dir (default, asan, tsan): a lock serialises presets that build at once, and the lock file's hash, kept in
# node_modules, says whether the installed tree is current (so each build dir's first build does not reinstall).
set -euo pipefail
ui=$(cd "$(dirname "$0")/.." && pwd)
exec 9>"$ui/node_modules.lock"
flock 9
want=$(sha256sum "$ui/package-lock.json" | cut -d' ' -f1)
have=$(cat "$ui/node_modules/.zm-package-lock.sha256" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "ui: npm ci (package-lock.json changed)"
  (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$ui/node_modules/.zm-package-lock.sha256"
fi
