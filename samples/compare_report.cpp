#include "compare_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace gqavk::compare {

namespace fs = std::filesystem;

namespace {

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string number(double v, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
  return buf;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error(path.string() + ": cannot open for writing");
  out << text;
  if (!out) throw std::runtime_error(path.string() + ": write failed");
}

double num(const Json& p, const char* key) {
  return p.contains(key) && p[key].is_number() ? p[key].get<double>() : NAN;
}

std::string str(const Json& p, const char* key) {
  if (!p.contains(key)) return "";
  return p[key].is_string() ? p[key].get<std::string>() : p[key].dump();
}

// A device's short label: its name, and its index where two share a name.
std::vector<std::string> device_labels(const Json& devices) {
  std::vector<std::string> labels;
  std::map<std::string, int> count;
  for (const Json& d : devices) ++count[str(d, "name")];
  for (size_t i = 0; i < devices.size(); ++i) {
    const std::string name = str(devices[i], "name");
    labels.push_back(count[name] > 1 ? name + " #" + std::to_string(i) : name);
  }
  return labels;
}

// The configuration a point belongs to, for a plot's series.
std::string series_name(const Json& p, const std::vector<std::string>& labels) {
  const size_t d = p["device"].get<size_t>();
  std::string s = (d < labels.size() ? labels[d] : "?") + " " + str(p, "config") + " " +
                  str(p, "kv_dtype") + " B" + str(p, "batch");
  return s;
}

}  // namespace

Json merge(const std::vector<std::pair<std::string, Json>>& documents) {
  Json out = {{"schema", kSchema}, {"devices", Json::array()}, {"points", Json::array()}};
  for (const auto& [name, doc] : documents) {
    if (!doc.is_object() || str(doc, "schema") != kSchema) {
      throw std::runtime_error(name + ": schema is '" + str(doc, "schema") + "' (expected '" +
                               kSchema + "')");
    }
    if (!out.contains("gqavk_version")) out["gqavk_version"] = doc["gqavk_version"];
    const size_t base = out["devices"].size();
    for (const Json& d : doc["devices"]) out["devices"].push_back(d);
    for (Json p : doc["points"]) {
      p["device"] = p["device"].get<size_t>() + base;
      out["points"].push_back(std::move(p));
    }
  }
  return out;
}

std::string svg_plot(const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<Series>& series, bool log_x,
                     bool log_y) {
  const double width = 760, height = 420, left = 70, right = 250, top = 40, bottom = 50;
  const double pw = width - left - right, ph = height - top - bottom;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  const auto tx = [&](double x) { return log_x ? std::log10(x) : x; };
  const auto ty = [&](double y) { return log_y ? std::log10(y) : y; };
  for (const Series& s : series) {
    for (const auto& [x, y] : s.points) {
      if (!(x > 0 || !log_x) || !(y > 0 || !log_y) || !std::isfinite(x) || !std::isfinite(y)) {
        continue;
      }
      x0 = std::min(x0, tx(x));
      x1 = std::max(x1, tx(x));
      y0 = std::min(y0, ty(y));
      y1 = std::max(y1, ty(y));
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (!log_y) y0 = std::min(y0, 0.0);
  if (x1 - x0 < 1e-9) x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-9) y0 -= 0.5, y1 += 0.5;
  if (log_y) y0 = std::floor(y0), y1 = std::ceil(y1);
  const auto px = [&](double x) { return left + (tx(x) - x0) / (x1 - x0) * pw; };
  const auto py = [&](double y) { return top + ph - (ty(y) - y0) / (y1 - y0) * ph; };
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" viewBox=\"0 0 " << width << " " << height << "\" font-family=\"sans-serif\" "
    << "font-size=\"11\">\n"
    << "<rect width=\"" << width << "\" height=\"" << height << "\" fill=\"white\"/>\n"
    << "<text x=\"" << left + pw / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">"
    << escape_xml(title) << "</text>\n"
    << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  // Ticks: decades on log axes, five steps on linear ones.
  const auto ticks = [](double a, double b, bool log) {
    std::vector<double> t;
    if (log) {
      for (double e = std::ceil(a - 1e-9); e <= b + 1e-9; e += 1) t.push_back(std::pow(10, e));
    } else {
      for (int i = 0; i <= 5; ++i) t.push_back(a + (b - a) * i / 5);
    }
    return t;
  };
  for (double x : ticks(x0, x1, log_x)) {
    o << "<line x1=\"" << px(x) << "\" y1=\"" << top + ph << "\" x2=\"" << px(x) << "\" y2=\""
      << top + ph + 5 << "\" stroke=\"#444\"/><text x=\"" << px(x) << "\" y=\"" << top + ph + 18
      << "\" text-anchor=\"middle\">" << number(x) << "</text>\n";
  }
  for (double y : ticks(y0, y1, log_y)) {
    o << "<line x1=\"" << left - 5 << "\" y1=\"" << py(y) << "\" x2=\"" << left + pw << "\" y2=\""
      << py(y) << "\" stroke=\"#ddd\"/><text x=\"" << left - 8 << "\" y=\"" << py(y) + 4
      << "\" text-anchor=\"end\">" << number(y) << "</text>\n";
  }
  o << "<text x=\"" << left + pw / 2 << "\" y=\"" << height - 12 << "\" text-anchor=\"middle\">"
    << escape_xml(x_label) << "</text>\n"
    << "<text transform=\"translate(16 " << top + ph / 2
    << ") rotate(-90)\" text-anchor=\"middle\">" << escape_xml(y_label) << "</text>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const char* color = colors[i % 10];
    o << "<polyline data-series=\"" << escape_xml(s.name) << "\" fill=\"none\" stroke=\"" << color
      << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : s.points) {
      if (std::isfinite(y) && (y > 0 || !log_y)) o << px(x) << "," << py(y) << " ";
    }
    o << "\"/>\n";
    for (const auto& [x, y] : s.points) {
      if (std::isfinite(y) && (y > 0 || !log_y)) {
        o << "<circle cx=\"" << px(x) << "\" cy=\"" << py(y) << "\" r=\"3\" fill=\"" << color
          << "\"/>\n";
      }
    }
    const double ly = top + 10 + 16 * static_cast<double>(i);
    o << "<line x1=\"" << left + pw + 12 << "\" y1=\"" << ly << "\" x2=\"" << left + pw + 30
      << "\" y2=\"" << ly << "\" stroke=\"" << color << "\" stroke-width=\"2\"/><text x=\""
      << left + pw + 36 << "\" y=\"" << ly + 4 << "\">" << escape_xml(s.name) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

std::vector<std::string> write_report(const Json& results, const std::string& dir) {
  const fs::path out(dir);
  fs::create_directories(out);
  write_text(out / "results.json", results.dump(2) + "\n");
  const Json& devices = results["devices"];
  const Json& points = results["points"];
  const std::vector<std::string> labels = device_labels(devices);

  // results.csv: one row per point, the device's name and driver repeated.
  static const char* columns[] = {
      "mode",   "config",  "kind",         "q_heads", "kv_heads", "head_dim", "kv_dtype",
      "batch",  "context", "layers",       "gpu_ms",  "kv_bytes", "gb_s",     "pct_bandwidth",
      "tflops", "pct_fma", "tokens_per_s", "max_err", "status",   "tuning"};
  std::ostringstream csv;
  csv << "device,driver";
  for (const char* c : columns) csv << "," << c;
  csv << "\n";
  const auto csv_field = [](std::string v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const Json& p : points) {
    const Json& d = devices[p["device"].get<size_t>()];
    csv << csv_field(str(d, "name")) << "," << csv_field(str(d, "driver_info"));
    for (const char* c : columns) {
      std::string v = p.contains(c) && !p[c].is_null() ? str(p, c) : "";
      if (std::string(c) == "tuning" && p.contains(c) && p[c].is_object()) {
        v.clear();  // "tier=cpu load_path=texel ..."
        for (const auto& [key, value] : p[c].items()) {
          v += (v.empty() ? "" : " ") + key + "=" +
               (value.is_string() ? value.get<std::string>() : value.dump());
        }
      }
      csv << "," << csv_field(v);
    }
    csv << "\n";
  }
  write_text(out / "results.csv", csv.str());

  // Plots: tokens per second against context per mode, and decode's share of the bandwidth.
  std::vector<std::string> svgs;
  std::ostringstream plots_md;
  const auto plot = [&](const std::string& mode, const char* field, const std::string& file,
                        const std::string& title, const std::string& y_label, bool log_y) {
    std::map<std::string, Series> by_name;
    std::vector<std::string> order;
    for (const Json& p : points) {
      if (str(p, "mode") != mode || str(p, "status") != "ok") continue;
      const std::string name = series_name(p, labels);
      if (!by_name.count(name)) {
        order.push_back(name);
        by_name[name].name = name;
      }
      by_name[name].points.emplace_back(num(p, "context"), num(p, field));
    }
    if (order.empty()) return;
    std::vector<Series> series;
    for (const std::string& n : order) {
      Series s = by_name[n];
      std::sort(s.points.begin(), s.points.end());
      series.push_back(std::move(s));
    }
    write_text(out / file,
               svg_plot(title, "context length (tokens)", y_label, series, true, log_y));
    svgs.push_back(file);
    plots_md << "![" << title << "](" << file << ")\n\n";
  };
  plot("decode", "tokens_per_s", "decode_tokens.svg", "Decode: tokens per second",
       "tokens/s (model of N layers)", true);
  plot("decode", "pct_bandwidth", "decode_bandwidth.svg",
       "Decode: percent of measured read bandwidth", "% of bandwidth", false);
  plot("prefill", "tokens_per_s", "prefill_tokens.svg", "Prefill: tokens per second",
       "tokens/s (model of N layers)", true);
  plot("prefill", "pct_fma", "prefill_fma.svg", "Prefill: percent of measured FMA rate",
       "% of FMA rate", false);
  plot("model", "tokens_per_s", "model_tokens.svg", "Model decode step: tokens per second",
       "tokens/s", true);

  std::ostringstream md;
  md << "# gqavk-compare report\n\n"
     << "gqavk " << str(results, "gqavk_version") << ", schema " << str(results, "schema")
     << ".\n\n## Devices\n\n"
     << "| device | driver | type | subgroup | read GB/s | FMA TFLOP/s |\n"
     << "|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < devices.size(); ++i) {
    const Json& d = devices[i];
    md << "| " << labels[i] << " | " << str(d, "driver_name") << " " << str(d, "driver_info")
       << " | " << str(d, "type") << " | " << str(d, "subgroup_size") << " | "
       << number(num(d, "read_gb_s")) << " (" << str(d, "read_variant") << ") | "
       << number(num(d, "fma_tflops")) << " |\n";
  }
  md << "\n## Plots\n\n"
     << plots_md.str() << "## Points\n\n"
     << "Times are GPU time from timestamp queries, the best of the repetitions; percentages are "
        "of the read bandwidth and FMA rate measured on the same device in the same run; tokens "
        "per second are for a model of `layers` such layers (decode: batch / (layers x time); "
        "prefill: batch x context / (layers x time)); max error is against the float64 reference "
        "of the unrounded inputs (empty where not checked).\n\n"
     << "| device | mode | config | dtype | B | context | GPU ms | GB/s | % bw | TFLOP/s | % FMA | "
        "tokens/s | max err |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const Json& p : points) {
    const size_t d = p["device"].get<size_t>();
    md << "| " << (d < labels.size() ? labels[d] : "?") << " | " << str(p, "mode") << " | "
       << str(p, "config") << " | " << str(p, "kv_dtype") << " | " << str(p, "batch") << " | "
       << str(p, "context") << " | ";
    if (str(p, "status") != "ok") {
      md << str(p, "status") << " | | | | | | |\n";
      continue;
    }
    md << number(num(p, "gpu_ms")) << " | " << number(num(p, "gb_s")) << " | "
       << number(num(p, "pct_bandwidth")) << " | " << number(num(p, "tflops")) << " | "
       << number(num(p, "pct_fma")) << " | " << number(num(p, "tokens_per_s")) << " | "
       << (p.contains("max_err") && p["max_err"].is_number() ? number(num(p, "max_err"), 2) : "")
       << " |\n";
  }
  write_text(out / "report.md", md.str());
  return svgs;
}

}  // namespace gqavk::compare
