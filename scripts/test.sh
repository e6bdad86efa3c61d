#!/usr/bin/env bash
# Builds gqavk (scripts/setup.sh) and runs every test with ctest; exits non-zero if any fails.
# Extra arguments go to ctest (for example -R decode).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR="${BUILD_DIR:-build}"
./scripts/setup.sh
echo
ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error --timeout 900 \
  -j "$(nproc 2>/dev/null || echo 2)" "$@"
