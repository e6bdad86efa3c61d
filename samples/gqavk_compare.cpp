// gqavk-compare: the same GQA work on one device, a chosen one or all of them, each point against
// the read bandwidth and FMA rate measured on that device in the same run; writes results.csv,
// results.json, report.md and SVG plots (compare_report.hpp). --merge joins several machines'
// results into one report.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cli.hpp"
#include "compare_report.hpp"
#include "decode_plan_impl.hpp"
#include "gqavk/gqavk.h"
#include "gqavk/gqavk.hpp"
#include "model_configs.hpp"
#include "prefill_plan_impl.hpp"
#include "reference.hpp"
#include "roofline.hpp"

namespace {

using gqavk::compare::Json;

struct Sweep {
  uint32_t heads = 32;
  uint32_t head_dim = 128;
  std::vector<uint32_t> contexts = {512, 2048, 8192};
  std::vector<uint32_t> batches = {1, 8};
  std::vector<std::string> dtypes = {"f16", "q8"};
  std::vector<std::string> modes = {"decode", "prefill"};
  uint32_t prefill_max_context = 2048;  // prefill points past it are left out (quadratic cost)
  bool prefill_gqa_only = false;        // --quick: prefill of the GQA shape (H/4) only
  uint32_t check_max_context = 1024;    // points up to it are checked against the reference
  uint32_t layers = 32;                 // N, for tokens per second of an N-layer model
  int reps = 3;
  std::string model;  // a config.json: the model's whole attention through the decode step
};

// One point of the sweep, before it runs.
struct Point {
  std::string mode, config, kind;
  uint32_t heads = 0, kv_heads = 0, head_dim = 0, batch = 0, context = 0;
  std::string dtype;
};

std::string kind_of(uint32_t h, uint32_t g) { return g == h ? "MHA" : g == 1 ? "MQA" : "GQA"; }

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Stderr progress: a bar and the point running now.
void progress(size_t done, size_t total, const std::string& what) {
  const int width = 30;
  const int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r[%s%s] %zu/%zu %-60.60s", std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), done, total, what.c_str());
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

// Best GPU time of `reps` runs after one warm-up run (which compiles on lavapipe).
template <class Run, class Ns>
double best_seconds(int reps, Run&& run, Ns&& gpu_ns) {
  run();
  double best = INFINITY;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const double wall =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ns = gpu_ns();
    best = std::min(best, ns > 0 ? ns * 1e-9 : wall);
  }
  return best;
}

Json device_json(gqavk::Context& ctx, gqavk::bench::Roofline& roof) {
  const gqavk::DeviceInfo& d = ctx.device();
  // The read roofline over a 64 MiB buffer (within every device's binding limits here).
  auto& impl = gqavk::impl_of(ctx);
  const uint64_t bytes =
      std::min<uint64_t>({64ull << 20, d.max_storage_buffer_range, d.max_memory_allocation_size});
  gqavk::Buffer buffer = impl.make_buffer(gqavk::BufferKind::device_local, bytes, "roofline");
  impl.submit([&](VkCommandBuffer cmd) { vkCmdFillBuffer(cmd, buffer.handle(), 0, bytes, 0); });
  const gqavk::bench::ReadResult read = roof.read_seconds(buffer, bytes);
  const double fma = roof.fma_flops_per_second();
  return {{"name", d.name},
          {"vendor", gqavk::to_string(d.vendor)},
          {"type", gqavk::to_string(d.type)},
          {"driver_name", d.driver_name},
          {"driver_info", d.driver_info},
          {"api_version", gqavk::version_string(d.api_version)},
          {"subgroup_size", d.subgroup_size},
          {"compute_units", d.compute_units},
          {"device_local_bytes", d.device_local_bytes()},
          {"read_gb_s", static_cast<double>(bytes) / read.seconds * 1e-9},
          {"read_variant", read.variant},
          {"fma_tflops", fma * 1e-12}};
}

// Fills the point's figures from its time, bytes read and FLOPs.
void figures(Json& p, const Json& device, double seconds, double bytes, double flops,
             double tokens) {
  p["gpu_ms"] = seconds * 1e3;
  p["kv_bytes"] = bytes;
  p["gb_s"] = bytes / seconds * 1e-9;
  p["pct_bandwidth"] = 100.0 * p["gb_s"].get<double>() / device["read_gb_s"].get<double>();
  p["tflops"] = flops / seconds * 1e-12;
  p["pct_fma"] = 100.0 * p["tflops"].get<double>() / device["fma_tflops"].get<double>();
  p["tokens_per_s"] = tokens / seconds;
}

Json run_attention_point(gqavk::Context& ctx, const Point& pt, const Sweep& sw, const Json& device,
                         std::mt19937& rng) {
  const uint32_t B = pt.batch, H = pt.heads, G = pt.kv_heads, D = pt.head_dim, L = pt.context;
  gqavk::KvCacheDesc cd;
  cd.batch = B;
  cd.kv_heads = G;
  cd.head_dim = D;
  cd.capacity_tokens = L;
  cd.dtype = gqavk::parse_dtype(pt.dtype);
  gqavk::KvCache cache(ctx, cd);
  const size_t per_seq = size_t{G} * L * D;
  const std::vector<float> k = random_values(per_seq * B, rng), v = random_values(per_seq * B, rng);
  for (uint32_t b = 0; b < B; ++b) {
    cache.write(b, 0, L, std::span(k).subspan(b * per_seq, per_seq),
                std::span(v).subspan(b * per_seq, per_seq));
  }
  const double kv_bytes = static_cast<double>(cache.memory().token_bytes) * L * B;
  const bool check = L <= sw.check_max_context;
  Json p;
  if (pt.mode == "decode") {
    gqavk::DecodeDesc dd;
    dd.q_heads = H;
    gqavk::DecodePlan plan(ctx, cache, dd);
    const std::vector<float> q = random_values(size_t{B} * H * D, rng);
    const std::vector<uint32_t> lengths(B, L);
    std::vector<float> out(size_t{B} * H * D);
    const double s = best_seconds(
        sw.reps, [&] { plan.run(q, lengths, out); }, [&] { return plan.last_gpu_ns(); });
    figures(p, device, s, kv_bytes, 2.0 * B * H * L * 2.0 * D, static_cast<double>(B) / sw.layers);
    p["splits"] = plan.splits();
    const gqavk::DecodeTuning& t = gqavk::impl_of(plan).tuning;
    p["tuning"] = {{"tier", gqavk::to_string(t.tier)},
                   {"load_path", gqavk::to_string(t.load_path)},
                   {"reduction", t.reduction == gqavk::Reduction::subgroup ? "subgroup" : "shared"},
                   {"lanes", t.lanes},
                   {"heads_per_workgroup", t.heads_per_workgroup},
                   {"max_splits", t.max_splits}};
    if (check) {
      const std::vector<double> want = gqavk::ref::decode(q, k, v, lengths, B, H, G, D, L,
                                                          1.0 / std::sqrt(static_cast<double>(D)));
      p["max_err"] = gqavk::ref::max_abs_diff(out, want);
    }
  } else {
    gqavk::PrefillDesc pd;
    pd.q_heads = H;
    gqavk::PrefillPlan plan(ctx, cache, pd);
    const gqavk::PrefillTuning& t = gqavk::impl_of(plan).tuning;
    p["tuning"] = {{"tier", gqavk::to_string(t.tier)},
                   {"load_path", gqavk::to_string(t.load_path)},
                   {"lanes", t.lanes},
                   {"tile_queries", t.tile_queries},
                   {"heads_per_workgroup", t.heads_per_workgroup}};
    std::vector<gqavk::PrefillSeq> seqs;
    for (uint32_t b = 0; b < B; ++b) seqs.push_back({b, L, L});
    const std::vector<float> q = random_values(size_t{B} * H * L * D, rng);
    std::vector<float> out(q.size());
    const double s = best_seconds(
        sw.reps, [&] { plan.run(q, seqs, out); }, [&] { return plan.last_gpu_ns(); });
    const double pairs = static_cast<double>(L) * (L + 1) / 2;
    figures(p, device, s, kv_bytes + 8.0 * static_cast<double>(q.size()),
            2.0 * B * H * pairs * 2.0 * D, static_cast<double>(B) * L / sw.layers);
    if (check) {  // the first sequence
      gqavk::ref::Options o;
      const std::vector<double> want = gqavk::ref::attention(
          std::span(q).first(size_t{H} * L * D), k.data(), v.data(), H, G, L, L, D, D, L, o);
      p["max_err"] = gqavk::ref::max_abs_diff(std::span(out).first(want.size()), want);
    }
  }
  p["layers"] = sw.layers;
  return p;
}

Json run_model_point(gqavk::Context& ctx, const gqavk::ModelDesc& model, const Point& pt,
                     const Sweep& sw, const Json& device, std::mt19937& rng) {
  const uint32_t B = pt.batch, L = pt.context;
  const uint32_t steps = static_cast<uint32_t>(sw.reps) + 1;
  gqavk::KvCache cache(ctx, model.cache_desc(B, L + steps));
  const gqavk::KvCacheDesc& cd = cache.desc();
  const size_t per_seq = size_t{cd.kv_heads} * (L - 1) * cd.head_dim;
  for (uint32_t l = 0; l < cd.layers; ++l) {
    const std::vector<float> k = random_values(per_seq, rng), v = random_values(per_seq, rng);
    for (uint32_t b = 0; b < B; ++b) cache.write(b, 0, L - 1, k, v, l);
  }
  gqavk::DecodeStepDesc sd;
  sd.max_batch = B;
  gqavk::DecodeStep step(ctx, cache, model, sd);
  std::vector<uint32_t> seqs(B);
  for (uint32_t b = 0; b < B; ++b) seqs[b] = b;
  const std::vector<float> q = random_values(step.q_values(B), rng);
  const std::vector<float> k = random_values(step.k_values(B), rng);
  const std::vector<float> v = random_values(step.v_values(B), rng);
  std::vector<float> out(step.out_values(B));
  // Each run appends one token: the context grows from L by one a step.
  const double s = best_seconds(
      sw.reps, [&] { step.run(seqs, q, k, v, out); }, [&] { return step.last_gpu_ns(); });
  double bytes = 0, flops = 0;
  for (const gqavk::LayerDesc& layer : model.layers) {
    const double keys = layer.window ? std::min<double>(*layer.window, L) : L;
    bytes += static_cast<double>(cache.memory().token_bytes) * keys * B;
    const uint32_t dv = layer.v_head_dim ? layer.v_head_dim : layer.head_dim;
    flops += 2.0 * B * layer.q_heads * keys * (layer.head_dim + dv);
  }
  Json p;
  figures(p, device, s, bytes, flops, B);
  p["layers"] = model.layers.size();
  return p;
}

std::vector<Point> plan_points(const Sweep& sw, const gqavk::ModelDesc* model) {
  std::vector<Point> points;
  if (model) {
    const gqavk::LayerDesc& l = model->layers.front();
    for (uint32_t b : sw.batches) {
      for (uint32_t c : sw.contexts) {
        points.push_back({"model", model->name, kind_of(l.q_heads, l.kv_heads), l.q_heads,
                          l.kv_heads, l.head_dim, b, c, gqavk::to_string(l.kv_dtype)});
      }
    }
    return points;
  }
  std::vector<uint32_t> groups;
  for (uint32_t g : {sw.heads, sw.heads / 4, sw.heads / 8, 1u}) {
    if (g >= 1 && sw.heads % g == 0 && std::find(groups.begin(), groups.end(), g) == groups.end()) {
      groups.push_back(g);
    }
  }
  for (const std::string& mode : sw.modes) {
    for (uint32_t g : groups) {
      for (const std::string& dt : sw.dtypes) {
        for (uint32_t b : sw.batches) {
          for (uint32_t c : sw.contexts) {
            if (mode == "prefill" && c > sw.prefill_max_context) continue;
            if (mode == "prefill" && sw.prefill_gqa_only &&
                g != groups[std::min<size_t>(1, groups.size() - 1)]) {
              continue;
            }
            const std::string config = kind_of(sw.heads, g) + " H" + std::to_string(sw.heads) +
                                       "/G" + std::to_string(g) + "/D" +
                                       std::to_string(sw.head_dim);
            points.push_back(
                {mode, config, kind_of(sw.heads, g), sw.heads, g, sw.head_dim, b, c, dt});
          }
        }
      }
    }
  }
  return points;
}

Json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open for reading");
  try {
    return Json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Sweep sw;
  std::string device, out_dir = "gqavk-compare-out";
  bool all = false, quick = false;
  std::vector<std::string> merge;
  gqavk::tools::Cli cli(
      "gqavk-compare",
      "usage: gqavk-compare [--quick] [--device D | --all] [--out DIR] [--model CONFIG] [sweep "
      "options]\n       gqavk-compare --merge A.json B.json ... [--out DIR]\n",
      "The same GQA attention on one or more Vulkan devices, each point against the read "
      "bandwidth and FMA rate measured on that device in the same run. Writes results.csv, "
      "results.json, report.md and SVG plots into --out.",
      "");
  CLI::App& app = cli.app;
  gqavk::tools::add_device_option(app, device);
  app.add_flag("--all", all, "every device that can run work");
  app.add_option("--out", out_dir, "folder for results.csv, results.json, report.md, *.svg")
      ->capture_default_str();
  app.add_flag("--quick", quick,
               "a small sweep for a first look and for tests: H 8, D 64, f16, batch 1, decode of "
               "G 8, 2 and 1 at 128 and 512 tokens, prefill of G 2 at 128");
  app.add_option("--merge", merge, "results.json files of several runs: one report of them all");
  app.add_option(
      "--model", sw.model,
      "a config.json, or a name in samples/configs: the whole model through the decode step");
  app.add_option("--heads", sw.heads, "H, query heads; G sweeps H, H/4, H/8 and 1")
      ->capture_default_str();
  app.add_option("--head-dim", sw.head_dim, "D")->capture_default_str();
  app.add_option("--contexts", sw.contexts, "context lengths")->capture_default_str();
  app.add_option("--batches", sw.batches, "batch sizes")->capture_default_str();
  app.add_option("--kv-dtype", sw.dtypes, "KV storage types: f32 f16 bf16 q8 q4")
      ->capture_default_str();
  app.add_option("--modes", sw.modes, "decode and/or prefill")->capture_default_str();
  app.add_option("--layers", sw.layers, "N: tokens per second are for a model of N such layers")
      ->capture_default_str();
  app.add_option("--reps", sw.reps, "timed runs per point (the best counts)")
      ->capture_default_str();
  if (const int status = cli.parse(argc, argv); status >= 0) return status;

  try {
    if (!merge.empty()) {
      std::vector<std::pair<std::string, Json>> docs;
      for (const std::string& f : merge) docs.emplace_back(f, read_json_file(f));
      const Json merged = gqavk::compare::merge(docs);
      gqavk::compare::write_report(merged, out_dir);
      std::printf("merged %zu result files (%zu devices, %zu points) into %s/report.md\n",
                  docs.size(), merged["devices"].size(), merged["points"].size(), out_dir.c_str());
      return 0;
    }
    if (quick) {  // smaller defaults; options given on the command line stay as given
      const auto unset = [&](const char* option) { return app.count(option) == 0; };
      if (unset("--heads")) sw.heads = 8;
      if (unset("--head-dim")) sw.head_dim = 64;
      if (unset("--contexts"))
        sw.contexts =
            sw.model.empty() ? std::vector<uint32_t>{128, 512} : std::vector<uint32_t>{256};
      if (unset("--batches")) sw.batches = {1};
      if (unset("--kv-dtype")) sw.dtypes = {"f16"};
      if (unset("--reps")) sw.reps = 2;
      // lavapipe compiles a prefill pipeline per head ratio in tens of seconds: quick runs the
      // GQA shape's at the shortest length.
      sw.prefill_gqa_only = true;
      sw.prefill_max_context = sw.contexts.front();
    }
    for (const std::string& m : sw.modes) {
      if (m != "decode" && m != "prefill") {
        throw std::runtime_error("--modes '" + m + "' is not decode or prefill");
      }
    }
    for (const std::string& d : sw.dtypes) gqavk::parse_dtype(d);  // names a bad one
    if (sw.heads == 0) throw std::runtime_error("--heads 0 (expected at least 1)");
    if (sw.layers == 0) throw std::runtime_error("--layers 0 (expected at least 1)");
    if (sw.reps < 1)
      throw std::runtime_error("--reps " + std::to_string(sw.reps) + " (expected >= 1)");
    for (uint32_t c : sw.contexts) {
      if (c == 0) throw std::runtime_error("--contexts has 0 (expected lengths >= 1)");
    }
    for (uint32_t b : sw.batches) {
      if (b == 0) throw std::runtime_error("--batches has 0 (expected sizes >= 1)");
    }
    std::optional<gqavk::ModelDesc> model;
    if (!sw.model.empty()) {
      model =
          gqavk::ModelDesc::load_hf_config(gqavk::tools::config_path(sw.model, GQAVK_CONFIGS_DIR));
    }

    std::vector<std::string> selectors;
    if (all) {
      for (const gqavk::DeviceInfo& d : gqavk::list_devices()) {
        if (d.can_run) selectors.push_back(std::to_string(d.index));
      }
      if (selectors.empty()) throw std::runtime_error("--all: no device can run work");
    } else {
      selectors.push_back(device);
    }
    const std::vector<Point> points = plan_points(sw, model ? &*model : nullptr);
    Json results = {{"schema", gqavk::compare::kSchema},
                    {"gqavk_version", std::to_string(GQAVK_VERSION_MAJOR) + "." +
                                          std::to_string(GQAVK_VERSION_MINOR) + "." +
                                          std::to_string(GQAVK_VERSION_PATCH)},
                    {"devices", Json::array()},
                    {"points", Json::array()}};
    const size_t total = points.size() * selectors.size();
    size_t done = 0;
    std::mt19937 rng(1234);
    for (const std::string& sel : selectors) {
      gqavk::ContextOptions options;
      options.device = sel;
      gqavk::Context ctx(options);
      if (!ctx.device().can_run) {
        throw std::runtime_error("device '" + ctx.device().name +
                                 "' cannot run work (it can only build pipelines)");
      }
      progress(done, total, "measuring the roofline of " + ctx.device().name);
      gqavk::bench::Roofline roof(gqavk::impl_of(ctx));
      Json dev = device_json(ctx, roof);
      const size_t device_index = results["devices"].size();
      for (const Point& pt : points) {
        progress(done, total,
                 pt.mode + " " + pt.config + " " + pt.dtype + " B" + std::to_string(pt.batch) +
                     " L" + std::to_string(pt.context));
        Json p;
        try {
          p = model ? run_model_point(ctx, *model, pt, sw, dev, rng)
                    : run_attention_point(ctx, pt, sw, dev, rng);
          p["status"] = "ok";
        } catch (const gqavk::Error& e) {
          // Shapes the device cannot hold (pool past its limits) are reported, not fatal.
          if (e.code() != gqavk::ErrorCode::unsupported &&
              e.code() != gqavk::ErrorCode::out_of_memory) {
            throw;
          }
          p = Json::object();
          p["status"] = std::string("skipped: ") + e.what();
        }
        Json point = {{"device", device_index},  {"mode", pt.mode},      {"config", pt.config},
                      {"kind", pt.kind},         {"q_heads", pt.heads},  {"kv_heads", pt.kv_heads},
                      {"head_dim", pt.head_dim}, {"kv_dtype", pt.dtype}, {"batch", pt.batch},
                      {"context", pt.context}};
        point.update(p);
        if (!point.contains("max_err")) point["max_err"] = nullptr;
        results["points"].push_back(std::move(point));
        ++done;
      }
      results["devices"].push_back(std::move(dev));
    }
    progress(done, total, "done");
    const std::vector<std::string> svgs = gqavk::compare::write_report(results, out_dir);
    std::printf(
        "%zu points on %zu device(s): %s/results.csv, results.json, report.md and %zu "
        "SVG plots\n",
        results["points"].size(), results["devices"].size(), out_dir.c_str(), svgs.size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\ngqavk-compare: %s\n", e.what());
    return 1;
  }
  return 0;
}
