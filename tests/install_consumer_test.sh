#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds tests/consumer against it as a user
# would and runs each program on the default device: with find_package(gqavk) (gqavk::gqavk and
# gqavk::gqavk_static), then with plain cc / c++ and `pkg-config gqavk`, shared and static.
# Usage: install_consumer_test.sh <build dir> <source dir> [cmake generator]
set -euo pipefail

build="$1"
source="$2"
generator="${3:-Ninja}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
CC="${CC:-cc}"
CXX="${CXX:-c++}"
cmake="${CMAKE:-cmake}"  # the cmake that configured the build tree, from ctest

say() { echo "install_consumer_test: $*"; }
fail() {
  echo "install_consumer_test: FAILED: $*" >&2
  exit 1
}
# Runs a built program; its output shows its error against the reference.
run() {
  say "running $1"
  "$@" || fail "$1 exited with $? (expected 0)"
}
# Fails unless program $1 does (want=yes) or does not (want=no) load libgqavk.so.
check_needed() {
  local needed=no
  # grep reads all (no -q): under pipefail an early exit would fail the pipe on SIGPIPE.
  if readelf -d "$1" | grep 'Shared library: \[libgqavk\.so\.0\]' >/dev/null; then needed=yes; fi
  [[ $needed == "$2" ]] || fail "$1: needs libgqavk.so.0: $needed (expected $2)"
}

# The libraries may be out of date when ctest runs alone.
"$cmake" --build "$build" --target gqavk gqavk_static >/dev/null ||
  fail "building gqavk and gqavk_static in $build"
say "installing $build into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; }
for f in include/gqavk/gqavk.hpp include/gqavk/gqavk.h include/gqavk/export.h lib/libgqavk.so \
  lib/libgqavk.so.0 lib/libgqavk.a lib/cmake/gqavk/gqavkConfig.cmake \
  lib/cmake/gqavk/gqavkConfigVersion.cmake lib/pkgconfig/gqavk.pc; do
  [[ -e $prefix/$f ]] || fail "the install lacks $f"
done

say "find_package(gqavk): configuring and building tests/consumer"
consumer="$source/tests/consumer"
"$cmake" -S "$consumer" -B "$tmp/build" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/configure.log" ||
  { cat "$tmp/configure.log" >&2; fail "configuring tests/consumer"; }
"$cmake" --build "$tmp/build" || fail "building tests/consumer"
check_needed "$tmp/build/consumer_cpp" yes
check_needed "$tmp/build/consumer_cpp_static" no
run "$tmp/build/consumer_cpp"
run "$tmp/build/consumer_cpp_static"
check_needed "$tmp/build/consumer_c" yes
run "$tmp/build/consumer_c"

say "pkg-config gqavk: building with $CXX and $CC"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists gqavk || fail "pkg-config finds no gqavk in $PKG_CONFIG_PATH"
read -r -a cflags <<<"$(pkg-config --cflags gqavk)"
read -r -a libs <<<"$(pkg-config --libs gqavk)"
"$CXX" -std=c++20 -Wall -Wextra -Werror "$consumer/consumer_cpp.cpp" "${cflags[@]}" "${libs[@]}" \
  -Wl,-rpath,"$prefix/lib" -o "$tmp/pc_cpp" || fail "$CXX with pkg-config gqavk"
check_needed "$tmp/pc_cpp" yes
run "$tmp/pc_cpp"
"$CC" -std=c99 -pedantic -Wall -Wextra -Werror "$consumer/consumer_c.c" "${cflags[@]}" "${libs[@]}" \
  -lm -Wl,-rpath,"$prefix/lib" -o "$tmp/pc_c" || fail "$CC with pkg-config gqavk"
check_needed "$tmp/pc_c" yes
run "$tmp/pc_c"

# The static library with Libs.private: the archive named instead of -lgqavk (which the linker
# resolves to the shared library when both are there).
read -r -a static_libs <<<"$(pkg-config --static --libs gqavk)"
static_libs=("${static_libs[@]/#-lgqavk/-l:libgqavk.a}")
"$CXX" -std=c++20 -Wall -Wextra -Werror "$consumer/consumer_cpp.cpp" "${cflags[@]}" \
  "${static_libs[@]}" -o "$tmp/pc_cpp_static" || fail "$CXX with pkg-config --static gqavk"
check_needed "$tmp/pc_cpp_static" no
run "$tmp/pc_cpp_static"

say "passed"
