#!/usr/bin/env bash
# Builds gqavk (scripts/setup.sh) and runs every test with ctest; exits non-zero if any fails.
# Extra arguments go to ctest (for example -R decode).
#
# --sanitize (first argument): builds into build-sanitize (or BUILD_DIR) with AddressSanitizer and
# UndefinedBehaviorSanitizer (-DGQAVK_SANITIZE=ON) and runs the tests under them; the arguments
# after it still go to ctest. Leaks inside the Vulkan loader, lavapipe and LLVM (not instrumented,
# not ours) are suppressed by scripts/sanitize/lsan.supp; everything else fails the test.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SANITIZE=0
if [[ ${1:-} == --sanitize ]]; then
  SANITIZE=1
  shift
fi

say() { echo "test.sh: $*"; }
ctest_env=()
jobs="$(nproc 2>/dev/null || echo 2)"

if [[ $SANITIZE -eq 1 ]]; then
  export BUILD_DIR="${BUILD_DIR:-build-sanitize}"
  export GQAVK_CMAKE_ARGS="-DGQAVK_SANITIZE=ON ${GQAVK_CMAKE_ARGS:-}"
  # Set before the build too: gtest_discover_tests runs the test binaries while building.
  # detect_odr_violation=0: the Vulkan loader and layers are loaded with dlopen and share symbol
  # names with each other, not with gqavk. UBSan stops at the first report (the build also has
  # -fno-sanitize-recover=undefined).
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_odr_violation=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:abort_on_error=0}"
  export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/scripts/sanitize/lsan.supp:print_suppressions=0}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  # The Vulkan loader unloads lavapipe and the layers (dlclose) at vkDestroyInstance: what they
  # keep in globals would then show as leaks from an <unknown module> that no suppression can
  # name. scripts/sanitize/no_dlclose.c, preloaded for the tests only, keeps them loaded.
  # verify_asan_link_order=0: the shim precedes libasan in the tests' library list.
  ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0"
  say "AddressSanitizer and UndefinedBehaviorSanitizer build in $BUILD_DIR"
else
  BUILD_DIR="${BUILD_DIR:-build}"
fi

./scripts/setup.sh
if [[ $SANITIZE -eq 1 ]]; then
  shim="$(cd "$BUILD_DIR" && pwd)/no_dlclose.so"
  cc -shared -fPIC -O2 -o "$shim" scripts/sanitize/no_dlclose.c
  ctest_env=(env "LD_PRELOAD=$shim${LD_PRELOAD:+:$LD_PRELOAD}")
fi
echo
status=0
${ctest_env[@]+"${ctest_env[@]}"} ctest --test-dir "$BUILD_DIR" --output-on-failure \
  --no-tests=error --timeout 900 -j "$jobs" \
  "$@" || status=$?

exit $status
