// KV cache capacity of a model without a device: bytes per token, per sequence at a context length
// and sequences per memory budget, for one storage type, beside the model's MHA form (gqavk-plan).
#pragma once

#include <cstdint>
#include <string>

#include "gqavk/model.hpp"
#include "gqavk/types.hpp"

namespace gqavk::tools {

// "MHA" (every layer G == H), "MQA" (every layer G == 1 < H), "GQA" (every layer 1 < G < H) or
// "mixed" when the layers differ.
std::string attention_kind(const ModelDesc& model);

// One form of the model (as configured, or MHA) in one storage type.
struct KvFigures {
  // One token of context: K and V rows (values and q8/q4 scales) of every KV head of every layer.
  uint64_t token_bytes = 0;
  // One sequence of `context_tokens`: full layers hold all of them, a window layer min(N, W).
  uint64_t sequence_bytes = 0;
  // The same in whole blocks of the paged pool, the most a sequence holds at once: ceil(N / P)
  // blocks per full layer; a window layer's W tokens touch at most ceil((W - 1) / P) + 1 blocks
  // (no more than ceil(N / P)).
  uint64_t sequence_block_bytes = 0;
  // Sequences whose blocks fit in the budget: budget / sequence_block_bytes, rounded down.
  uint64_t sequences = 0;
};

struct KvPlan {
  DType dtype = DType::f16;
  KvFigures model;  // the layers as configured
  KvFigures mha;    // the same layers with kv_heads = q_heads
};

// The figures for `model` stored as `dtype`. Block sizes come from KvCache::plan_memory, so a
// storage type the cache cannot hold (q4 with head dims that are not multiples of 32) throws its
// gqavk::Error. Throws gqavk::Error (invalid_argument) for context_tokens 0 or a block size that is
// not a power of two from 1 to 256.
KvPlan plan_kv(const ModelDesc& model, DType dtype, uint32_t context_tokens, uint32_t block_tokens,
               uint64_t budget_bytes);

}  // namespace gqavk::tools
