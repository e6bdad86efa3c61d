#!/usr/bin/env bash
# Checks what libgqavk.so exports: every defined dynamic symbol is a C API function (gqavk_*) or
# lies in namespace gqavk under a name the public headers declare (classes, functions, their
# typeinfo and vtables); the C functions are exactly those gqavk.h declares; no std::
# instantiation, no internal class, no Impl; SONAME libgqavk.so.<major>.
# Usage: exported_symbols_test.sh <libgqavk.so> <include dir> <major version>
set -euo pipefail

lib="$1"
include="$2"
major="$3"
status=0
bad() {
  echo "exported_symbols_test: $*" >&2
  status=1
}

soname="$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[[ $soname == "libgqavk.so.$major" ]] || bad "SONAME '$soname' (expected libgqavk.so.$major)"

# Demangled names; nm's first two columns are the address and the type. Constructors and
# destructors have two symbols (complete and base object) of one demangled name.
symbols="$(nm -D --defined-only "$lib" | wc -l)"
mapfile -t names < <(nm -D --defined-only -C "$lib" | cut -d' ' -f3- | sort -u)
c_count=0
cxx_count=0
declare -A first_names=()
for name in "${names[@]}"; do
  if [[ $name =~ ^gqavk_[a-z0-9_]+$ ]]; then
    c_count=$((c_count + 1))
  elif [[ $name =~ ^((typeinfo|typeinfo name|vtable) for )?gqavk::([A-Za-z_][A-Za-z0-9_]*) ]]; then
    cxx_count=$((cxx_count + 1))
    first_names[${BASH_REMATCH[3]}]=1
    [[ $name =~ ^[^\(]*::Impl:: ]] && bad "an internal Impl's member is exported: $name"
  else
    bad "exported symbol outside gqavk_* and namespace gqavk: $name"
  fi
done

# Each C++ symbol's first name in gqavk:: (a class or a function) must be declared in a public
# header; this catches any internal class or function exported by mistake.
for first in "${!first_names[@]}"; do
  grep -qE "(class|struct) (GQAVK_API )?$first\b|\b$first\(" "$include"/gqavk/*.hpp ||
    bad "gqavk::$first is exported but no public header declares it"
done
# The C functions: exactly those gqavk.h declares (GQAVK_API gqavk_status gqavk_name(...)).
mapfile -t declared < <(grep -oE 'GQAVK_API [^(]*\bgqavk_[a-z0-9_]+\(' "$include/gqavk/gqavk.h" |
  grep -oE 'gqavk_[a-z0-9_]+\($' | tr -d '(' | sort -u)
mapfile -t exported_c < <(printf '%s\n' "${names[@]}" | grep -E '^gqavk_[a-z0-9_]+$' | sort -u)
for name in $(comm -13 <(printf '%s\n' "${declared[@]}") <(printf '%s\n' "${exported_c[@]}")); do
  bad "C function $name is exported but gqavk.h does not declare it"
done
for name in $(comm -23 <(printf '%s\n' "${declared[@]}") <(printf '%s\n' "${exported_c[@]}")); do
  bad "gqavk.h declares $name but libgqavk.so does not export it"
done
# A few internal classes by name, in case a public header ever names them.
for internal in Submitter Buffer ComputePipeline KvPages PipelineDesc DecodeTuning detail; do
  [[ -z ${first_names[$internal]+x} ]] || bad "internal gqavk::$internal is exported"
done

echo "exported_symbols_test: libgqavk.so ($soname) exports $symbols symbols, ${#names[@]} distinct" \
  "names: $c_count C (gqavk_*), $cxx_count C++ (under ${#first_names[@]} names of namespace gqavk)"
[[ $symbols -gt 0 ]] || bad "no symbols exported"
exit $status
