#!/usr/bin/env bash
# The local demo (a two-node mesh from network namespaces). Not implemented yet: see the demo issue.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
die "the demo is not implemented yet; run 'sudo tools/test.sh' to build and test what exists"
