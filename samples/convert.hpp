// MHA (or GQA) checkpoint -> GQA checkpoint with fewer KV heads: each new KV head's key and value
// projection rows (weights and biases) are the mean of its group's old heads, as the GQA paper
// converts a checkpoint before uptraining (Ainslie et al. 2023). gqavk-convert's engine.

#ifndef GQAVK_SAMPLES_CONVERT_HPP_
#define GQAVK_SAMPLES_CONVERT_HPP_

#include <cstdint>
#include <string>

namespace gqavk::convert {

struct Options {
  std::string in_dir;     // config.json and model.safetensors, or model.safetensors.index.json
  std::string out_dir;    // created if missing; must not be in_dir
  uint32_t kv_heads = 0;  // G: divides the checkpoint's KV heads
  // ECMAScript regexes over tensor names: the key and value projections (weights and biases).
  // The defaults fit the Llama family (Mistral, Qwen2, ...).
  std::string key_pattern = R"(.*\.self_attn\.k_proj\.(weight|bias))";
  std::string value_pattern = R"(.*\.self_attn\.v_proj\.(weight|bias))";
};

struct Report {
  uint32_t q_heads = 0;
  uint32_t old_kv_heads = 0;
  uint32_t new_kv_heads = 0;
  uint32_t head_dim = 0;
  uint32_t pooled = 0;  // key and value tensors mean-pooled
  uint32_t copied = 0;  // other tensors, copied byte for byte
  uint32_t files = 0;   // safetensors files written
};

// Converts; throws std::runtime_error naming the file, tensor or field at fault.
Report run(const Options& options);

}  // namespace gqavk::convert

#endif  // GQAVK_SAMPLES_CONVERT_HPP_
