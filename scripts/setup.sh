#!/usr/bin/env bash
# Installs what gqavk needs to build (Debian 12 packages, only those missing) and builds Release
# into build/ (override with BUILD_DIR). A second run installs nothing and rebuilds only what
# changed, so demo.sh and test.sh call it every time. GQAVK_CMAKE_ARGS adds configure arguments.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR="${BUILD_DIR:-build}"
export DEBIAN_FRONTEND=noninteractive

# build-essential brings g++; mesa-vulkan-drivers brings lavapipe, the CPU Vulkan driver the
# tests run on; glslang-tools and spirv-tools compile and check the shaders at build time;
# nlohmann-json3-dev (header-only) writes gqavk-info's JSON and reads it back in its test;
# pkg-config and binutils (nm, readelf) serve the install and exported-symbol tests.
# libcli11-dev (header-only CLI11) parses every sample's command line. clang and libclang-rt-dev
# (libFuzzer) build the fuzz targets whose short runs are part of ./scripts/test.sh.
PACKAGES=(
  build-essential g++ cmake ninja-build pkg-config binutils
  mesa-vulkan-drivers libvulkan-dev vulkan-tools vulkan-validationlayers
  glslang-tools spirv-tools
  googletest libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev
  clang libclang-rt-dev
)

say() { echo "setup.sh: $*"; }

install_missing() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    say "no dpkg-query: not a Debian system, so nothing is installed; the build needs: ${PACKAGES[*]}"
    return 0
  fi
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    say "all ${#PACKAGES[@]} packages already installed"
    return 0
  fi
  say "missing ${#missing[@]} package(s): ${missing[*]}"
  local run=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      say "not root; using sudo"
      run=(sudo env DEBIAN_FRONTEND=noninteractive)
    else
      say "error: not root and no sudo; install these as root and run again: ${missing[*]}" >&2
      exit 1
    fi
  fi
  say "installing them with apt-get"
  "${run[@]}" apt-get update -q
  "${run[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

configure_and_build() {
  # An existing build directory made with another generator cannot be switched to Ninja.
  local cache="$BUILD_DIR/CMakeCache.txt"
  if [[ -f $cache ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$cache"; then
    say "error: $BUILD_DIR was configured with another generator; remove it or set BUILD_DIR" >&2
    exit 1
  fi
  local jobs
  jobs="$(nproc 2>/dev/null || echo 2)"
  say "configuring Release in $BUILD_DIR"
  local log
  log="$(mktemp)"
  # GQAVK_CMAKE_ARGS: more configure arguments (test.sh --sanitize: -DGQAVK_SANITIZE=ON).
  local extra=()
  read -r -a extra <<<"${GQAVK_CMAKE_ARGS:-}"
  if ! cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    say "error: cmake configure failed (output above)" >&2
    exit 1
  fi
  rm -f "$log"
  say "building with $jobs job(s)"
  cmake --build "$BUILD_DIR" --parallel "$jobs"
  say "build ready: executables in $BUILD_DIR/bin"
}

start=$SECONDS
install_missing
configure_and_build
say "done in $((SECONDS - start)) s"
