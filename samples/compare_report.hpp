// gqavk-compare's results and report: one JSON document (schema "gqavk-compare/1", README) from
// which results.csv, report.md and the SVG plots are written, for one machine's run or several
// merged.

#ifndef GQAVK_SAMPLES_COMPARE_REPORT_HPP_
#define GQAVK_SAMPLES_COMPARE_REPORT_HPP_

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace gqavk::compare {

using Json = nlohmann::ordered_json;

inline constexpr const char* kSchema = "gqavk-compare/1";

// Joins result documents: devices are appended and each point's "device" index renumbered.
// Throws std::runtime_error naming a document whose schema is not kSchema.
Json merge(const std::vector<std::pair<std::string, Json>>& documents);

// Writes results.json, results.csv, report.md and the SVG plots of `results` into `dir` (created
// if missing); returns the SVG files' names.
std::vector<std::string> write_report(const Json& results, const std::string& dir);

// One line plot as a standalone SVG: log-scaled axes where asked; each series a polyline with a
// data-series attribute and a legend entry.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), x ascending
};
std::string svg_plot(const std::string& title, const std::string& x_label,
                     const std::string& y_label, const std::vector<Series>& series, bool log_x,
                     bool log_y);

}  // namespace gqavk::compare

#endif  // GQAVK_SAMPLES_COMPARE_REPORT_HPP_
