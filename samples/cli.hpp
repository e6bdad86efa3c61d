// Command lines of the samples: CLI11 with the conventions they share. Every sample takes --help;
// the shared options are spelled and described once here (--device, --kv-dtype, --json); a bad
// command line prints "<sample>: <message naming the option>", the usage and a pointer to --help
// on stderr and exits 2.
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "gqavk/types.hpp"

namespace gqavk::tools {

constexpr int kExitUsage = 2;

// `text` broken at spaces into lines of at most `width` columns; explicit newlines are kept.
inline std::string wrap_text(std::string_view text, size_t width) {
  std::string out;
  size_t line = 0;  // columns on the current line
  while (!text.empty()) {
    if (text.front() == '\n') {
      out += '\n';
      line = 0;
      text.remove_prefix(1);
      continue;
    }
    const size_t end = std::min(text.find_first_of(" \n"), text.size());
    const std::string_view word = text.substr(0, end);
    if (line > 0 && line + 1 + word.size() > width) {
      out += '\n';
      line = 0;
    } else if (line > 0) {
      out += ' ';
      ++line;
    }
    out += word;
    line += word.size();
    text.remove_prefix(end);
    if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  }
  return out;
}

// Prints --help as: the usage synopsis, the description, the options, the footer; every
// description wrapped within 100 columns.
class HelpFormatter : public CLI::Formatter {
 public:
  static constexpr size_t kColumn = 24;
  static constexpr size_t kWidth = 100;

  explicit HelpFormatter(std::string usage) : usage_(std::move(usage)) { column_width(kColumn); }
  const std::string& usage() const { return usage_; }

  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode mode) const override {
    return usage_ + "\n" + wrap_text(app->get_description(), kWidth) + "\n" +
           make_positionals(app) + make_groups(app, mode) + "\n" +
           wrap_text(app->get_footer(), kWidth) + "\n";
  }
  std::string make_option_desc(const CLI::Option* opt) const override {
    return wrap_text(opt->get_description(), kWidth - kColumn);
  }

 private:
  std::string usage_;
};

// --device D: the same selector as ContextOptions::device.
inline CLI::Option* add_device_option(CLI::App& app, std::string& device,
                                      const std::string& extra = "") {
  return app
      .add_option("--device", device,
                  "Vulkan device index or name substring (default: GQAVK_DEVICE, else the best "
                  "device)" +
                      extra)
      ->type_name("D");
}

// --kv-dtype T: how the KV cache stores K and V; `default_text` says what happens without it.
inline CLI::Option* add_kv_dtype_option(CLI::App& app, std::optional<DType>& dtype,
                                        const std::string& default_text) {
  return app
      .add_option_function<std::string>(
          "--kv-dtype",
          [&dtype](const std::string& text) {
            for (DType t : {DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4}) {
              if (text == to_string(t)) {
                dtype = t;
                return;
              }
            }
            throw CLI::ValidationError("--kv-dtype '" + text +
                                       "' is not valid (expected f32, f16, bf16, q8 or q4)");
          },
          "KV cache storage: f32, f16, bf16 (rounded to nearest even), q8 (int8, a scale per "
          "token and head) or q4 (4-bit, a scale per 32 values; head dims multiples of 32). " +
              default_text)
      ->type_name("T");
}

// --json: print one JSON document instead of text.
inline CLI::Option* add_json_flag(CLI::App& app, bool& json, const std::string& what) {
  return app.add_flag("--json", json, "print " + what + " as one JSON document");
}

namespace detail {

// CLI11's message for `e`, reworded where CLI11 2.1 says it unclearly; each names the option.
inline std::string error_text(const CLI::ParseError& e) {
  const std::string text = e.what();
  const auto ends_with = [&](std::string_view tail) {
    return text.size() >= tail.size() &&
           std::string_view(text).substr(text.size() - tail.size()) == tail;
  };
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    // "The following argument(s) was/were not expected: a b"
    const std::string args = text.substr(text.find(": ") + 2);
    const std::string first = args.substr(0, args.find(' '));
    return (first.rfind('-', 0) == 0 ? "unknown option '" : "unexpected argument '") + first + "'";
  }
  const size_t colon = text.find(": ");
  const std::string option = text.substr(0, colon);
  // A validator's message, which CLI11 prefixes with the option's name, already names it.
  if (colon != std::string::npos && text.compare(colon + 2, option.size(), option) == 0) {
    return text.substr(colon + 2);
  }
  if (colon != std::string::npos && text.find("At Most 1 required but received") != text.npos) {
    return option + " is given more than once";
  }
  if (colon != std::string::npos && ends_with(" missing") && text.find(" required ") != text.npos) {
    return option + " needs a value";
  }
  if (ends_with(" was given a disallowed flag override")) {
    return "--" + text.substr(0, text.find(' ')) + " takes no value";
  }
  return text;
}

}  // namespace detail

// The command line of one sample: CLI11's App with --help, options given twice and flags given a
// value ("--json=yes") refused, and the samples' way of reporting errors.
class Cli {
 public:
  // `usage` is the synopsis ("usage: gqavk-x ...\n"), printed first by --help and after errors;
  // `description` follows it in --help and `footer` ends it.
  Cli(const std::string& name, std::string usage, const std::string& description,
      const std::string& footer)
      : app(description, name) {
    auto formatter = std::make_shared<HelpFormatter>(std::move(usage));
    formatter_ = formatter.get();
    app.formatter(formatter);
    app.footer(footer);
    app.option_defaults()->disable_flag_override()->multi_option_policy(
        CLI::MultiOptionPolicy::Throw);
    app.set_help_flag("-h,--help", "print this help and exit");
  }
  Cli(const Cli&) = delete;
  Cli& operator=(const Cli&) = delete;

  // Parses argv into the options. Returns -1 to go on, 0 after printing --help to stdout, or
  // kExitUsage after printing an error to stderr. A value that is itself an option ("--q --k
  // K.npy", where CLI11 would take "--k" as the value of --q) counts as a missing value.
  int parse(int argc, char** argv) {
    for (CLI::Option* opt : app.get_options()) {
      if (opt->get_expected_max() == 0) {
        // A flag: CLI11 takes the last of several; ours are given once, like every option.
        if (opt != app.get_help_ptr()) opt->multi_option_policy(CLI::MultiOptionPolicy::Throw);
        continue;
      }
      const std::string name = opt->get_name();
      opt->check(
          [name](const std::string& value) -> std::string {
            if (value.rfind("--", 0) != 0) return "";
            return name + " needs a value (got the option '" + value + "')";
          },
          "", "not_an_option");
    }
    try {
      app.parse(argc, argv);
      return -1;
    } catch (const CLI::CallForHelp&) {
      std::fputs(app.help().c_str(), stdout);
      return 0;
    } catch (const CLI::ParseError& e) {
      return usage_error(detail::error_text(e));
    }
  }

  // Prints "<name>: <message>", the usage and a pointer to --help on stderr; returns kExitUsage.
  int usage_error(const std::string& message) const {
    const std::string name = app.get_name();
    std::fprintf(stderr, "%s: %s\n%sRun '%s --help' for details.\n", name.c_str(), message.c_str(),
                 formatter_->usage().c_str(), name.c_str());
    return kExitUsage;
  }

  CLI::App app;

 private:
  const HelpFormatter* formatter_ = nullptr;
};

}  // namespace gqavk::tools
