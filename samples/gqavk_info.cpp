// gqavk-info: what gqavk sees of each Vulkan device and what it would run there.
//
//   gqavk-info [--device D] [--shape H:32/G:8/D:128/f16 ...] [--pipelines] [--json]
//
// For every device (or the one chosen): its capability record, the decode and prefill tunings gqavk
// picks for each shape, and with --pipelines the driver's own statistics of each pipeline built
// (decode, merge and prefill: registers,
// spills, occupancy: VK_KHR_pipeline_executable_properties). Devices that can only build pipelines
// (RADV's null hardware under RADV_FORCE_FAMILY) are listed and built on too.
// Exit status: 0 when every fact was gathered, 1 when a device or pipeline failed, 2 for bad
// flags.

#include <cmath>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.hpp"
#include "context_impl.hpp"
#include "decode_pipelines.hpp"
#include "gqavk/gqavk.hpp"
#include "model_shapes.hpp"
#include "pipeline_statistics.hpp"
#include "prefill_pipelines.hpp"
#include "tuning.hpp"

namespace {

using Json = nlohmann::ordered_json;
using gqavk::tools::ModelShape;

constexpr int kExitFailure = 1;

constexpr const char* kUsage =
    "usage: gqavk-info [--device D] [--shape H:32/G:8/D:128/f16 ...] [--pipelines] [--json]\n";

constexpr const char* kDescription =
    "Lists every Vulkan device gqavk can use with its capability record (vendor, driver, API "
    "version, type, memory heaps, subgroup sizes and operations, 16-bit support, buffer device "
    "addresses, the limits gqavk relies on, whether it can run work) and the decode and prefill "
    "tunings gqavk picks for each shape.";

constexpr const char* kFooter =
    "GQAVK_KV_LOAD, GQAVK_REDUCTION, GQAVK_VALUES and GQAVK_TIER steer the tuning as they steer "
    "plans. RADV_FORCE_FAMILY=navi21 (or vega10, gfx1100) adds RADV's \"Null hardware\" device, "
    "which compiles for that AMD GPU without one: with --pipelines it shows AMD's register use.\n"
    "Exit status: 0 on success, 1 when a device or pipeline failed, 2 for bad options.";

struct Options {
  std::string device;  // empty: every device
  std::vector<ModelShape> shapes;
  bool pipelines = false;
  bool json = false;
};

// --- gathering: every fact goes into one JSON document, which both outputs print ---

Json subgroup_ops(uint32_t ops) {
  static constexpr const char* kNames[] = {
      "basic", "vote", "arithmetic", "ballot", "shuffle", "shuffle_relative", "clustered", "quad"};
  Json out = Json::array();
  for (uint32_t bit = 0; bit < 8; ++bit) {
    if (ops & (1u << bit)) out.push_back(kNames[bit]);
  }
  return out;
}

Json device_record(const gqavk::DeviceInfo& d) {
  Json heaps = Json::array();
  for (const gqavk::MemoryHeap& h : d.heaps) {
    heaps.push_back({{"bytes", h.size_bytes}, {"device_local", h.device_local}});
  }
  return {
      {"index", d.index},
      {"name", d.name},
      {"vendor", gqavk::to_string(d.vendor)},
      {"vendor_id", d.vendor_id},
      {"device_id", d.device_id},
      {"type", gqavk::to_string(d.type)},
      {"driver", {{"id", d.driver_id}, {"name", d.driver_name}, {"info", d.driver_info}}},
      {"api_version", gqavk::version_string(d.api_version)},
      {"can_run", d.can_run},
      {"memory_heaps", heaps},
      {"compute_units", d.compute_units},
      {"subgroups",
       {{"size", d.subgroup_size},
        {"lanes", d.subgroup_lanes},
        {"bug_partial_subgroups", d.bug_partial_subgroups},
        {"size_control", d.subgroup_size_control},
        {"min_size", d.min_subgroup_size},
        {"max_size", d.max_subgroup_size},
        {"full_subgroups", d.compute_full_subgroups},
        {"operations", subgroup_ops(d.subgroup_ops)}}},
      {"16bit", {{"storage_buffers", d.storage_buffer_16bit}, {"float16", d.shader_float16}}},
      {"limits",
       {{"max_storage_buffer_range", d.max_storage_buffer_range},
        {"max_texel_buffer_elements", d.max_texel_buffer_elements},
        {"max_memory_allocation_size", d.max_memory_allocation_size},
        {"max_buffer_size", d.max_buffer_size},
        {"max_shared_memory_bytes", d.max_shared_memory_bytes},
        {"max_workgroup_invocations", d.max_workgroup_invocations},
        {"max_workgroup_size", d.max_workgroup_size},
        {"max_workgroup_subgroups", d.max_workgroup_subgroups},
        {"max_workgroup_count", d.max_workgroup_count},
        {"max_push_constants_bytes", d.max_push_constants_bytes},
        {"max_per_stage_storage_buffers", d.max_per_stage_storage_buffers},
        {"max_descriptor_set_storage_buffers", d.max_descriptor_set_storage_buffers}}},
      // JSON has no infinity: a period that is not finite (RADV's null hardware) is null.
      {"timestamps",
       {{"period_ns", std::isfinite(d.timestamp_period_ns) ? Json(d.timestamp_period_ns) : Json()},
        {"valid_bits", d.timestamp_valid_bits}}},
      {"pipeline_statistics", d.pipeline_statistics},
      {"buffer_device_address", d.buffer_device_address},
      {"timeline_semaphore", d.timeline_semaphore},
  };
}

Json tuning_record(const gqavk::DecodeTuning& t) {
  return {
      {"tier", gqavk::to_string(t.tier)},
      {"load_path", gqavk::to_string(t.load_path)},
      {"reduction", t.reduction == gqavk::Reduction::subgroup ? "subgroup" : "shared"},
      {"lanes", t.lanes},
      {"subgroup_lanes", t.subgroup_lanes},
      {"lanes_per_key", t.lanes_per_key},
      {"required_subgroup_size", t.required_subgroup_size},
      {"full_subgroups", t.full_subgroups},
      {"heads_per_workgroup", t.heads_per_workgroup},
      {"head_subgroups", t.head_subgroups},
      {"head_chunks", t.head_chunks},
      {"keys_per_lane", t.keys_per_lane},
      {"values_by_key", t.values_by_key},
      {"max_splits", t.max_splits},
  };
}

Json prefill_tuning_record(const gqavk::PrefillTuning& t) {
  Json out = {{"tier", gqavk::to_string(t.tier)},
              {"load_path", gqavk::to_string(t.load_path)},
              {"lanes", t.lanes},
              {"tile_queries", t.tile_queries},
              {"heads_per_workgroup", t.heads_per_workgroup},
              {"head_chunks", t.head_chunks},
              {"keys_per_tile", t.keys_per_tile},
              {"required_subgroup_size", t.required_subgroup_size},
              {"full_subgroups", t.full_subgroups}};
  if (t.tier == gqavk::Tier::gpu) {
    out["reduction"] = t.reduction == gqavk::Reduction::subgroup ? "subgroup" : "shared";
    out["subgroup_lanes"] = t.subgroup_lanes;
    out["lanes_per_row"] = t.lanes_per_row;
  }
  return out;
}

Json statistic_value(const gqavk::PipelineStatistic& s) {
  using Format = gqavk::PipelineStatistic::Format;
  switch (s.format) {
    case Format::boolean:
      return s.value != 0;
    case Format::int64:
      return static_cast<int64_t>(s.value);
    case Format::uint64:
      return static_cast<uint64_t>(s.value);
    case Format::float64:
      break;
  }
  return s.value;
}

// Builds `desc` on the context's device; with statistics, the driver's figures per executable.
Json pipeline_record(gqavk::Context& ctx, const char* role, const gqavk::PipelineDesc& desc) {
  Json out = {{"role", role}, {"shader", desc.shader}};
  const gqavk::ComputePipeline pipe = impl_of(ctx).make_pipeline(desc);
  if (!impl_of(ctx).capture_statistics) return out;
  Json executables = Json::array();
  for (const gqavk::PipelineExecutable& e : gqavk::pipeline_statistics(impl_of(ctx), pipe)) {
    Json stats = Json::object();
    for (const gqavk::PipelineStatistic& s : e.statistics) stats[s.name] = statistic_value(s);
    executables.push_back(
        {{"name", e.name}, {"subgroup_size", e.subgroup_size}, {"statistics", stats}});
  }
  out["executables"] = executables;
  return out;
}

// One shape on one device: the tuning, and the pipelines when asked. Errors become facts.
Json shape_record(gqavk::Context& ctx, const ModelShape& m, bool pipelines, bool* failed) {
  Json out = {{"model", m.model},
              {"shape", gqavk::tools::shape_name(m)},
              {"capacity_tokens", m.capacity_tokens},
              {"batch", m.batch}};
  const gqavk::DecodeShape shape = gqavk::tools::decode_shape(m, ctx.device());
  try {
    // Dv != Dk: a fact about decode (DecodePlan refuses it), not a failure of this device.
    if (m.v_head_dim && m.v_head_dim != m.head_dim) {
      out["decode_skipped"] = "decode does not yet take Dv != Dk";
    } else {
      const gqavk::DecodeTuning t =
          gqavk::choose_decode_tuning(ctx.device(), shape, 0, gqavk::overrides_from_env());
      out["tuning"] = tuning_record(t);
      gqavk::check_decode_limits(ctx.device(), shape, t);
      if (pipelines) {
        const gqavk::DecodePipelineDescs descs = gqavk::decode_pipeline_descs(shape, t);
        out["pipelines"] = Json::array({pipeline_record(ctx, "decode", descs.decode)});
        if (descs.merge) out["pipelines"].push_back(pipeline_record(ctx, "merge", *descs.merge));
      }
    }
  } catch (const gqavk::Error& e) {
    out["error"] = e.what();
    *failed = true;
  }
  // Prefill of the same shape on the same cache: its tuning, and its pipeline beside decode's.
  const gqavk::PrefillShape prefill = gqavk::tools::prefill_shape(m, ctx.device());
  try {
    const gqavk::PrefillTuning t =
        gqavk::choose_prefill_tuning(ctx.device(), prefill, gqavk::overrides_from_env());
    out["prefill_tuning"] = prefill_tuning_record(t);
    gqavk::check_prefill_limits(ctx.device(), prefill, t);
    if (pipelines) {
      if (!out.contains("pipelines")) out["pipelines"] = Json::array();
      out["pipelines"].push_back(
          pipeline_record(ctx, "prefill", gqavk::prefill_pipeline_descs(prefill, t).prefill));
    }
  } catch (const gqavk::Error& e) {
    out["prefill_error"] = e.what();
    *failed = true;
  }
  return out;
}

// The device chosen by `selector` ("" for the default): its record and every shape's entry.
Json gather_device(const std::string& selector, const Options& o, bool* failed) {
  gqavk::ContextOptions co;
  co.device = selector;
  co.pipeline_statistics = o.pipelines;
  gqavk::Context ctx(co);
  Json out = device_record(ctx.device());
  Json shapes = Json::array();
  for (const ModelShape& m : o.shapes) shapes.push_back(shape_record(ctx, m, o.pipelines, failed));
  out["decode"] = shapes;
  return out;
}

Json gather(const Options& o, bool* failed) {
  Json devices = Json::array();
  if (!o.device.empty()) {
    devices.push_back(gather_device(o.device, o, failed));
  } else {
    for (const gqavk::DeviceInfo& d : gqavk::list_devices()) {
      try {
        devices.push_back(gather_device(std::to_string(d.index), o, failed));
      } catch (const gqavk::Error& e) {
        Json record = device_record(d);
        record["error"] = e.what();
        devices.push_back(record);
        *failed = true;
      }
    }
  }
  return {{"devices", devices}};
}

// --- text output ---

std::string yes_no(const Json& b) { return b.get<bool>() ? "yes" : "no"; }

std::string bytes_text(uint64_t bytes) {
  char buf[32];
  const double gib = static_cast<double>(bytes) / double(1ull << 30);
  if (gib >= 1) {
    std::snprintf(buf, sizeof(buf), "%.1f GiB", gib);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / double(1 << 20));
  }
  return buf;
}

// Prints "key value" pairs after `lead`, wrapped at 100 columns under an indent.
void print_pairs(const std::string& lead, const std::vector<std::string>& pairs, size_t indent) {
  std::string line = lead;
  bool first = true;
  for (const std::string& p : pairs) {
    if (!first && line.size() + 3 + p.size() > 100) {  // ", " before it and "," after
      std::printf("%s,\n", line.c_str());
      line = std::string(indent, ' ') + p;
    } else {
      line += (first ? "" : ", ") + p;
    }
    first = false;
  }
  std::printf("%s\n", line.c_str());
}

std::string value_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return yes_no(v);
  if (v.is_array()) {
    std::string out;
    for (const Json& x : v) out += (out.empty() ? "" : "x") + value_text(x);
    return out;
  }
  if (v.is_null()) return "none";
  return v.dump();
}

void print_shape(const Json& s) {
  const std::string model = s["model"].get<std::string>();
  std::printf("  %-11s %s\n", model.empty() ? "-" : model.c_str(),
              s["shape"].get<std::string>().c_str());
  // "key value" pairs of the object `key` of s, when present.
  const auto print_object = [&](const char* key, const std::string& lead) {
    if (!s.contains(key)) return;
    std::vector<std::string> pairs;
    for (const auto& [k, v] : s[key].items()) pairs.push_back(k + " " + value_text(v));
    print_pairs(lead, pairs, lead.size());
  };
  print_object("tuning", "    tuning: ");
  if (s.contains("decode_skipped")) {
    std::printf("    decode: %s\n", s["decode_skipped"].get<std::string>().c_str());
  }
  print_object("prefill_tuning", "    prefill tuning: ");
  if (s.contains("pipelines")) {
    for (const Json& p : s["pipelines"]) {
      const std::string lead =
          "    " + p["role"].get<std::string>() + " (" + p["shader"].get<std::string>() + ")";
      if (!p.contains("executables")) {
        std::printf("%s: built\n", lead.c_str());
        continue;
      }
      for (const Json& e : p["executables"]) {
        std::vector<std::string> pairs;
        for (const auto& [k, v] : e["statistics"].items()) pairs.push_back(k + " " + value_text(v));
        std::printf("%s, %s, subgroup %s:\n", lead.c_str(), e["name"].get<std::string>().c_str(),
                    value_text(e["subgroup_size"]).c_str());
        print_pairs("      ", pairs, 6);
      }
    }
  }
  if (s.contains("error")) std::printf("    error: %s\n", s["error"].get<std::string>().c_str());
  if (s.contains("prefill_error")) {
    std::printf("    prefill error: %s\n", s["prefill_error"].get<std::string>().c_str());
  }
}

void print_device(const Json& d, bool pipelines) {
  std::printf("device %s: %s\n", d["index"].dump().c_str(), d["name"].get<std::string>().c_str());
  char ids[64];
  std::snprintf(ids, sizeof(ids), "0x%04x, device 0x%04x", d["vendor_id"].get<unsigned>(),
                d["device_id"].get<unsigned>());
  std::printf("  vendor:      %s (%s), %s\n", d["vendor"].get<std::string>().c_str(), ids,
              d["type"].get<std::string>().c_str());
  std::printf("  driver:      %s, %s (driver id %s), Vulkan %s\n",
              d["driver"]["name"].get<std::string>().c_str(),
              d["driver"]["info"].get<std::string>().c_str(), d["driver"]["id"].dump().c_str(),
              d["api_version"].get<std::string>().c_str());
  std::printf("  runs work:   %s\n", d["can_run"].get<bool>()
                                         ? "yes"
                                         : "no (no memory for buffers: it only builds pipelines)");
  std::string heaps;
  for (const Json& h : d["memory_heaps"]) {
    heaps += (heaps.empty() ? "" : ", ") + bytes_text(h["bytes"].get<uint64_t>()) +
             (h["device_local"].get<bool>() ? " device-local" : " host");
  }
  std::printf("  memory:      %s; %s compute units\n", heaps.empty() ? "no heaps" : heaps.c_str(),
              d["compute_units"].dump().c_str());
  const Json& sg = d["subgroups"];
  std::string ops;
  for (const Json& op : sg["operations"]) ops += (ops.empty() ? "" : " ") + op.get<std::string>();
  std::printf(
      "  subgroups:   size %s (%s lanes in use%s), size control %s (%s to %s, full "
      "subgroups %s)\n",
      sg["size"].dump().c_str(), sg["lanes"].dump().c_str(),
      sg["bug_partial_subgroups"].get<bool>() ? ", driver runs partial subgroups" : "",
      yes_no(sg["size_control"]).c_str(), sg["min_size"].dump().c_str(),
      sg["max_size"].dump().c_str(), yes_no(sg["full_subgroups"]).c_str());
  std::printf("  subgroup ops: %s\n", ops.empty() ? "none" : ops.c_str());
  std::printf("  16-bit:      storage buffers %s, float16 arithmetic %s\n",
              yes_no(d["16bit"]["storage_buffers"]).c_str(), yes_no(d["16bit"]["float16"]).c_str());
  std::vector<std::string> limits;
  for (const auto& [k, v] : d["limits"].items()) limits.push_back(k + " " + value_text(v));
  print_pairs("  limits:      ", limits, 15);
  const Json& period = d["timestamps"]["period_ns"];
  std::printf("  timestamps:  %s, %s valid bits\n",
              period.is_null() ? "no usable period" : (period.dump() + " ns per tick").c_str(),
              d["timestamps"]["valid_bits"].dump().c_str());
  std::printf("  pipeline statistics: %s\n",
              d["pipeline_statistics"].get<bool>()
                  ? "yes (VK_KHR_pipeline_executable_properties)"
                  : "no (the driver lacks VK_KHR_pipeline_executable_properties)");
  std::printf("  buffer device address: %s\n",
              d["buffer_device_address"].get<bool>()
                  ? "yes (KV pools past one binding's range use the address load path)"
                  : "no (a KV pool must fit one binding)");
  std::printf("  timeline semaphores: %s\n", d.value("timeline_semaphore", false)
                                                 ? "yes (DecodeStep keeps steps in flight)"
                                                 : "no (DecodeStep is unavailable)");
  if (d.contains("error")) {
    std::printf("  error: %s\n", d["error"].get<std::string>().c_str());
    return;
  }
  std::printf("decode on %s:%s\n", d["name"].get<std::string>().c_str(),
              pipelines && !d["pipeline_statistics"].get<bool>()
                  ? " (pipelines built; this driver reports no statistics)"
                  : "");
  for (const Json& s : d["decode"]) print_shape(s);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  gqavk::tools::Cli cli("gqavk-info", kUsage, kDescription, kFooter);
  CLI::App& app = cli.app;
  gqavk::tools::add_device_option(app, options.device, "; without it, every device is listed");
  app.add_option_function<std::vector<std::string>>(
         "--shape",
         [&options](const std::vector<std::string>& texts) {
           for (const std::string& text : texts) {
             try {
               options.shapes.push_back(gqavk::tools::parse_shape(text));
             } catch (const gqavk::Error& e) {
               throw CLI::ValidationError(std::string("--shape: ") + e.what());
             }
           }
         },
         "a model shape, as gqavk-bench names them: H:<query heads>/G:<KV heads>/D:<head "
         "dim>/<f32|f16|bf16|q8|q4>, optionally /L:<cache tokens> (default 16384), /B:<batch> "
         "(default 1) and /Dv:<V head dim> (128 with D:192). Repeatable. Default: the tests' model "
         "shapes (llama3_8b 32/8/128, qwen2_7b 28/4/128, falcon_7b 71/1/64, qwen2_0_5b 14/2/64, "
         "phi3_mini 32/32/96, gemma2_9b 16/8/256), in f16 and f32")
      ->type_name("S")
      ->allow_extra_args(false)  // one shape per --shape
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_flag("--pipelines", options.pipelines,
               "build each shape's pipelines (decode, the merge when split, and prefill) on the "
               "device and print the driver's statistics for each under the driver's own names "
               "(VK_KHR_pipeline_executable_properties; e.g. AMD's VGPRs, spills, Subgroups per "
               "SIMD). Lavapipe compiles at first dispatch and reports none.");
  gqavk::tools::add_json_flag(app, options.json, "the same facts");
  if (const int status = cli.parse(argc, argv); status >= 0) return status;
  if (options.shapes.empty()) options.shapes = gqavk::tools::model_shapes();

  try {
    bool failed = false;
    const Json facts = gather(options, &failed);
    if (options.json) {
      std::printf("%s\n", facts.dump(2).c_str());
    } else {
      bool first = true;
      for (const Json& d : facts["devices"]) {
        if (!first) std::printf("\n");
        first = false;
        print_device(d, options.pipelines);
      }
    }
    return failed ? kExitFailure : 0;
  } catch (const gqavk::Error& e) {
    std::fprintf(stderr, "gqavk-info: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gqavk-info: %s\n", e.what());
  }
  return kExitFailure;
}
