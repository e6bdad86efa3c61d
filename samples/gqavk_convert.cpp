// gqavk-convert: turns an MHA (or GQA) checkpoint into a GQA one with fewer KV heads, mean-pooling
// each group's key and value projections (samples/convert.hpp).
#include <cstdio>
#include <exception>

#include "cli.hpp"
#include "convert.hpp"

int main(int argc, char** argv) {
  gqavk::convert::Options o;
  gqavk::tools::Cli cli(
      "gqavk-convert",
      "usage: gqavk-convert --in DIR --out DIR --kv-heads G [--key-pattern RE] [--value-pattern "
      "RE]\n",
      "Mean-pools the key and value projections of an MHA checkpoint into G KV heads (the GQA "
      "paper's conversion before uptraining). Reads and writes safetensors (F32, F16, BF16; one "
      "file or shards with model.safetensors.index.json) and writes config.json with "
      "num_key_value_heads = G; other files are copied.",
      "");
  CLI::App& app = cli.app;
  app.add_option("--in", o.in_dir, "folder with config.json and model.safetensors (or shards)")
      ->type_name("DIR")
      ->required();
  app.add_option("--out", o.out_dir, "folder to write the converted checkpoint to")
      ->type_name("DIR")
      ->required();
  app.add_option("--kv-heads", o.kv_heads, "G, the KV heads to keep (divides the checkpoint's)")
      ->type_name("G")
      ->required();
  app.add_option("--key-pattern", o.key_pattern,
                 "regex of the key projection tensors' names, weights and biases (default: "
                 "the Llama family's k_proj)")
      ->type_name("RE");
  app.add_option("--value-pattern", o.value_pattern,
                 "regex of the value projection tensors' names (default: v_proj)")
      ->type_name("RE");
  if (const int status = cli.parse(argc, argv); status >= 0) return status;
  try {
    const gqavk::convert::Report r = gqavk::convert::run(o);
    std::printf(
        "%u query heads, %u -> %u KV heads of dim %u: %u key/value tensors pooled, %u copied, "
        "%u safetensors file(s) written to %s\n",
        r.q_heads, r.old_kv_heads, r.new_kv_heads, r.head_dim, r.pooled, r.copied, r.files,
        o.out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gqavk-convert: %s\n", e.what());
    return 1;
  }
  return 0;
}
