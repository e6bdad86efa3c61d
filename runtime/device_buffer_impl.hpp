// DeviceBuffer::Impl: the buffer and the context that made it.
#pragma once

#include "buffer.hpp"
#include "context_impl.hpp"
#include "gqavk/device_buffer.hpp"
#include "impl_access.hpp"
#include "pipeline.hpp"

namespace gqavk {

struct GQAVK_HIDDEN DeviceBuffer::Impl {
  ImplOf<Context>* ctx = nullptr;
  Buffer buffer;  // owned, or the application's (DeviceBuffer::wrap: offset() may be > 0)
  // The buffer as a storage binding.
  Binding binding() const { return {buffer.handle(), buffer.offset(), buffer.bytes()}; }
};

}  // namespace gqavk
