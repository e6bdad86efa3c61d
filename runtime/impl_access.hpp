// The runtime's access to the internal state of the public classes (Context, KvCache, ...), whose
// Impl and impl_ are private: each class befriends detail::Access (gqavk/detail.hpp). For the
// runtime and in-tree tools (tests, bench, samples) only; never installed.
#pragma once

#include "gqavk/detail.hpp"

// Marks each Impl's definition (struct GQAVK_HIDDEN Context::Impl {...}): a class nested in an
// exported class would otherwise be exported with it.
#if defined(__GNUC__) || defined(__clang__)
#define GQAVK_HIDDEN __attribute__((visibility("hidden")))
#else
#define GQAVK_HIDDEN
#endif

namespace gqavk {

namespace detail {

struct Access {
  // A member class of the friend may name the private T::Impl (an alias template could not).
  template <class T>
  struct ImplType {
    using type = typename T::Impl;
  };
  template <class T>
  static auto& impl(const T& x) {
    return *x.impl_;
  }
};

}  // namespace detail

// The internal state type of public class T, e.g. ImplOf<Context> (Context::Impl).
template <class T>
using ImplOf = typename detail::Access::ImplType<T>::type;

// The internal state of `x` (mutable, as the old impl() gave it).
template <class T>
ImplOf<T>& impl_of(const T& x) {
  return detail::Access::impl(x);
}

}  // namespace gqavk
