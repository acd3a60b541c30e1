#!/usr/bin/env bash
# Kept for compatibility: the data-plane benchmark is bench/run.sh (same arguments).
exec "$(dirname "$0")/run.sh" "$@"
