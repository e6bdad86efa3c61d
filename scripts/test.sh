#!/usr/bin/env bash
# Builds gqavk (scripts/setup.sh) and runs every test with ctest; exits non-zero if any fails.
# Extra arguments go to ctest (for example -R decode).
#
# --sanitize (first argument): builds into build-sanitize (or BUILD_DIR) with AddressSanitizer and
# UndefinedBehaviorSanitizer (-DGQAVK_SANITIZE=ON) and runs the tests under them; the arguments
# after it still go to ctest. Leaks inside the Vulkan loader, lavapipe and LLVM (not instrumented,
# not ours) are suppressed by scripts/sanitize/lsan.supp; everything else fails the test.
#
# Fuzzing: where clang and libFuzzer are installed (Debian: clang, libclang-rt-dev), the libFuzzer
# targets of fuzz/ are built with clang into build-fuzz (FUZZ_BUILD_DIR) and their tests run after
# the main suite: every seed and regression input, and 10 s of fuzzing per target. The 300 s runs
# carry the label fuzz and run only when asked for (./scripts/test.sh -L fuzz). GQAVK_FUZZ=0 skips
# the fuzz build, GQAVK_FUZZ=1 requires it.
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

# Long fuzz runs and the soak (100,000 decode steps) only when the caller names labels (-L /
# --label-regex) itself. Then the main build may have no test with those labels (-L fuzz): not an
# error there.
label_args=(-LE '^(fuzz|soak)$')
main_no_tests=error
for arg in "$@"; do
  case $arg in
    -L | -L* | --label-regex | --label-regex=*)
      label_args=()
      main_no_tests=ignore
      ;;
  esac
done

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
  --no-tests="$main_no_tests" --timeout 900 -j "$jobs" \
  ${label_args[@]+"${label_args[@]}"} "$@" || status=$?

# --- fuzz targets (clang, libFuzzer) ---
have_libfuzzer() {
  command -v clang++ >/dev/null 2>&1 || return 1
  local probe
  probe="$(mktemp -d)"
  printf 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }\n' \
    >"$probe/probe.cpp"
  clang++ -fsanitize=fuzzer "$probe/probe.cpp" -o "$probe/probe" >/dev/null 2>&1
  local rc=$?
  rm -rf "$probe"
  return $rc
}
FUZZ="${GQAVK_FUZZ:-auto}"
if [[ $SANITIZE -eq 0 && $FUZZ != 0 ]]; then
  if have_libfuzzer; then
    FUZZ_BUILD_DIR="${FUZZ_BUILD_DIR:-build-fuzz}"
    say "fuzz targets: building with clang in $FUZZ_BUILD_DIR"
    start=$SECONDS
    cmake -S . -B "$FUZZ_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DGQAVK_FUZZ=ON \
      -DGQAVK_BUILD_TESTS=OFF -DGQAVK_BUILD_SAMPLES=OFF -DGQAVK_BUILD_BENCH=OFF >/dev/null
    cmake --build "$FUZZ_BUILD_DIR" --parallel "$jobs" --target gqavk_fuzzers
    say "fuzz targets built in $((SECONDS - start)) s"
    ctest --test-dir "$FUZZ_BUILD_DIR" --output-on-failure --no-tests=ignore --timeout 900 \
      -j "$jobs" ${label_args[@]+"${label_args[@]}"} "$@" || status=$?
  elif [[ $FUZZ == 1 ]]; then
    say "error: GQAVK_FUZZ=1 but clang++ with libFuzzer is missing (Debian: clang libclang-rt-dev)" >&2
    exit 1
  else
    say "fuzz targets skipped: no clang++ with libFuzzer (Debian: clang libclang-rt-dev)"
  fi
fi
exit $status
