#include "kv_plan.hpp"

#include <algorithm>

#include "gqavk/error.hpp"
#include "gqavk/kv_cache.hpp"

namespace gqavk::tools {
namespace {

const char* layer_kind(const LayerDesc& l) {
  if (l.kv_heads == l.q_heads) return "MHA";
  return l.kv_heads == 1 ? "MQA" : "GQA";
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// Adds one layer of `kv_heads` KV heads to `f`.
void add_layer(KvFigures& f, const LayerDesc& l, uint32_t kv_heads, DType dtype,
               uint32_t context_tokens, uint32_t block_tokens) {
  const uint32_t dv = l.v_head_dim ? l.v_head_dim : l.head_dim;
  const uint64_t token_bytes =
      uint64_t{kv_heads} * (row_bytes(dtype, l.head_dim) + row_bytes(dtype, dv));
  // One block of this layer as the pool lays it out; throws for a shape the cache cannot store.
  KvCacheDesc desc;
  desc.kv_heads = kv_heads;
  desc.head_dim = l.head_dim;
  desc.v_head_dim = dv;
  desc.dtype = dtype;
  desc.block_tokens = block_tokens;
  desc.capacity_tokens = block_tokens;
  const uint64_t block_bytes = KvCache::plan_memory(desc).block_bytes;

  const uint64_t full_blocks = ceil_div(context_tokens, block_tokens);
  uint64_t tokens = context_tokens, blocks = full_blocks;
  if (l.window) {
    tokens = std::min<uint64_t>(context_tokens, *l.window);
    blocks = std::min(full_blocks, ceil_div(*l.window - 1, block_tokens) + 1);
  }
  f.token_bytes += token_bytes;
  f.sequence_bytes += token_bytes * tokens;
  f.sequence_block_bytes += block_bytes * blocks;
}

}  // namespace

std::string attention_kind(const ModelDesc& model) {
  std::string kind;
  for (const LayerDesc& l : model.layers) {
    const std::string k = layer_kind(l);
    if (!kind.empty() && k != kind) return "mixed";
    kind = k;
  }
  return kind;
}

KvPlan plan_kv(const ModelDesc& model, DType dtype, uint32_t context_tokens, uint32_t block_tokens,
               uint64_t budget_bytes) {
  if (context_tokens == 0) {
    throw Error(ErrorCode::invalid_argument, "context of 0 tokens (expected at least 1)");
  }
  if (block_tokens == 0 || block_tokens > 256 || (block_tokens & (block_tokens - 1)) != 0) {
    throw Error(ErrorCode::invalid_argument, "block of " + std::to_string(block_tokens) +
                                                 " tokens (expected a power of two from 1 to 256)");
  }
  KvPlan plan;
  plan.dtype = dtype;
  for (const LayerDesc& l : model.layers) {
    add_layer(plan.model, l, l.kv_heads, dtype, context_tokens, block_tokens);
    add_layer(plan.mha, l, l.q_heads, dtype, context_tokens, block_tokens);
  }
  for (KvFigures* f : {&plan.model, &plan.mha}) {
    f->sequences = f->sequence_block_bytes ? budget_bytes / f->sequence_block_bytes : 0;
  }
  return plan;
}

}  // namespace gqavk::tools
