#!/usr/bin/env bash
# Builds the OpenTelemetry Collector the tracing test receives spans with (tools/lib/otelcol/: the OTLP receiver and
# the debug exporter, collector v0.165.0) once from the Go module proxy and caches it outside the clone:
#   $ZM_DEPS/otelcol-<version>/bin/zm-otelcol
# Idempotent and instant when cached (a changed go.mod or main.go rebuilds). Prints the binary's path on stdout.
#   tools/lib/otelcol.sh          build if missing
#   tools/lib/otelcol.sh --path   only print the path (exit 1 when not built)
# Needs Go 1.26 (the machine's; go.mod says go 1.26.0, so no other toolchain is fetched). About a minute on 2 cores
# with the module cache warm, a few minutes cold (docs/design.md "Tracing").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

VERSION=0.165.0
DIR="$ZM_DEPS/otelcol-$VERSION/bin"
BIN="$DIR/zm-otelcol"
stamp=$(cat "$here/otelcol/go.mod" "$here/otelcol/go.sum" "$here/otelcol/main.go" | sha256sum | cut -c1-16)
is_current() { [ -x "$BIN" ] && [ "$(cat "$DIR/.zm-otelcol.stamp" 2>/dev/null)" = "$stamp" ]; }

if [ "${1:-}" = "--path" ]; then
  is_current || exit 1
  echo "$BIN"
  exit 0
fi
if ! is_current; then
  command -v go >/dev/null || die "Go is needed to build the OpenTelemetry Collector for the tracing test"
  log "building the OpenTelemetry Collector $VERSION from source (once; cached in $DIR)"
  mkdir -p "$DIR"
  work=$(mktemp -d)
  cp "$here/otelcol/go.mod" "$here/otelcol/go.sum" "$here/otelcol/main.go" "$work/"
  start=$(date +%s)
  if ! (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local \
          nice -n 10 go build -trimpath -ldflags "-s -w" -o "$work/zm-otelcol" .); then
    rm -rf "$work"
    die "building the OpenTelemetry Collector failed (see the Go output above)"
  fi
  mv -f "$work/zm-otelcol" "$BIN"
  echo "$stamp" >"$DIR/.zm-otelcol.stamp"
  rm -rf "$work"
  log "OpenTelemetry Collector built in $(( $(date +%s) - start )) s"
fi
echo "$BIN"
