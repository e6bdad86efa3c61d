// DeviceBuffer::Impl: the buffer and the context that made it.
#pragma once

#include "buffer.hpp"
#include "context_impl.hpp"
#include "gqavk/device_buffer.hpp"
#include "impl_access.hpp"

namespace gqavk {

struct GQAVK_HIDDEN DeviceBuffer::Impl {
  ImplOf<Context>* ctx = nullptr;
  Buffer buffer;
};

}  // namespace gqavk
