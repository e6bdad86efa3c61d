#!/usr/bin/env bash
# Builds gqavk (scripts/setup.sh) and runs gqavk-demo on the default device; arguments go to the
# demo (try --help).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR="${BUILD_DIR:-build}"
./scripts/setup.sh
echo
exec "$BUILD_DIR/bin/gqavk-demo" "$@"
