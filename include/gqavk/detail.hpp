// Not part of the API: the one door the runtime and in-tree tools take to a public class's internal
// state (runtime/impl_access.hpp defines it). Nothing here is for users of the library.
#pragma once

namespace gqavk::detail {

struct Access;

}  // namespace gqavk::detail
