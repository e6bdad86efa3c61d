// gqavk: grouped-query attention on any Vulkan device. Include this one header.
#pragma once

#include "gqavk/attention.hpp"
#include "gqavk/context.hpp"
#include "gqavk/decode.hpp"
#include "gqavk/decode_step.hpp"
#include "gqavk/device_buffer.hpp"
#include "gqavk/device_info.hpp"
#include "gqavk/error.hpp"
#include "gqavk/half.hpp"
#include "gqavk/kv_cache.hpp"
#include "gqavk/model.hpp"
#include "gqavk/prefill.hpp"
#include "gqavk/types.hpp"
