#include "npy.hpp"

#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include "gqavk/half.hpp"

namespace gqavk::npy {
namespace {

static_assert(std::endian::native == std::endian::little,
              "npy.cpp reads and writes little-endian data with plain memory copies");

constexpr std::string_view kMagic("\x93NUMPY", 6);
constexpr std::size_t kMaxShownHeader = 200;

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

[[noreturn]] void fail(const std::string& path, const std::string& message) {
  throw std::runtime_error(path + ": " + message);
}

std::string errno_message(int error) { return std::generic_category().message(error); }

// Renders untrusted file text for an error message, escaping non-printable bytes.
std::string printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : text.substr(0, kMaxShownHeader)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  if (text.size() > kMaxShownHeader) out += "...";
  return out;
}

// Formats a shape the way Python prints a tuple: (), (3,), (2, 3).
std::string shape_to_string(const std::vector<std::size_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ",";
  return out + ")";
}

// Returns the product of the dimensions, or nullopt if it does not fit in size_t.
std::optional<std::size_t> element_count(const std::vector<std::size_t>& shape) {
  std::size_t count = 1;
  for (const std::size_t dim : shape) {
    if (dim != 0 && count > std::numeric_limits<std::size_t>::max() / dim) return std::nullopt;
    count *= dim;
  }
  // A zero dimension makes the product 0 even if earlier dimensions would have overflowed.
  for (const std::size_t dim : shape) {
    if (dim == 0) return 0;
  }
  return count;
}

struct Header {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::size_t> shape;
};

// Parses the Python dict literal of an .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// Keys may come in any order, with any whitespace, single or double quotes and a trailing comma.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, std::string_view text) : path_(path), text_(text) {}

  Header parse() {
    Header header;
    bool has_descr = false;
    bool has_fortran_order = false;
    bool has_shape = false;

    skip_space();
    if (!consume('{')) malformed("expected '{' at offset " + where() + ", found " + found());
    while (true) {
      skip_space();
      if (consume('}')) break;  // Empty dict or trailing comma.
      if (at_end()) malformed("unterminated dict (expected '}')");
      const std::size_t key_offset = pos_;
      if (peek() != '\'' && peek() != '"') {
        malformed("expected a quoted key or '}' at offset " + where() + ", found " + found());
      }
      const std::string key = parse_string("key");
      skip_space();
      if (!consume(':')) {
        malformed("expected ':' after key '" + printable(key) + "' at offset " + where() +
                  ", found " + found());
      }
      skip_space();
      bool* seen = nullptr;
      if (key == "descr") {
        seen = &has_descr;
        header.descr = parse_descr();
      } else if (key == "fortran_order") {
        seen = &has_fortran_order;
        header.fortran_order = parse_bool(key);
      } else if (key == "shape") {
        seen = &has_shape;
        header.shape = parse_shape();
      } else {
        malformed("unexpected key '" + printable(key) + "' at offset " +
                  std::to_string(key_offset) +
                  " (expected only 'descr', 'fortran_order' and 'shape')");
      }
      if (*seen) malformed("duplicate key '" + key + "'");
      *seen = true;
      skip_space();
      if (consume(',')) continue;
      if (consume('}')) break;
      if (at_end()) malformed("unterminated dict (expected ',' or '}')");
      malformed("expected ',' or '}' after the value of '" + key + "' at offset " + where() +
                ", found " + found());
    }
    skip_space();
    if (!at_end()) {
      malformed("unexpected text after the closing '}' at offset " + where() + ", found " +
                found() + " (expected only space padding and a newline)");
    }
    const char* missing = !has_descr           ? "descr"
                          : !has_fortran_order ? "fortran_order"
                          : !has_shape         ? "shape"
                                               : nullptr;
    if (missing != nullptr) {
      malformed(std::string("missing key '") + missing +
                "' (expected 'descr', 'fortran_order' and 'shape')");
    }
    return header;
  }

 private:
  [[noreturn]] void malformed(const std::string& problem) const {
    std::string_view shown = text_;
    while (!shown.empty() && (shown.back() == ' ' || shown.back() == '\n')) shown.remove_suffix(1);
    fail(path_, "malformed header: " + problem + "; header text: " + printable(shown));
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  std::string where() const { return std::to_string(pos_); }
  std::string found() const {
    if (at_end()) return "end of header";
    return "'" + printable(text_.substr(pos_, 1)) + "'";
  }

  void skip_space() {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') break;
      ++pos_;
    }
  }

  bool consume(char c) {
    if (at_end() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  // Parses a single- or double-quoted Python string literal; backslash escapes the next byte.
  std::string parse_string(const std::string& what) {
    const char quote = text_[pos_++];
    std::string out;
    while (true) {
      if (at_end())
        malformed("unterminated string in " + what + " (expected closing " + quote + ")");
      const char c = text_[pos_++];
      if (c == quote) return out;
      if (c == '\n')
        malformed("unterminated string in " + what + " (newline before closing quote)");
      if (c == '\\') {
        if (at_end()) malformed("unterminated string in " + what);
        out += text_[pos_++];
      } else {
        out += c;
      }
    }
  }

  std::string parse_descr() {
    if (peek() != '\'' && peek() != '"') {
      malformed("'descr' at offset " + where() +
                " must be a dtype string such as '<f4' (structured dtypes are not supported), "
                "found " +
                found());
    }
    return parse_string("'descr'");
  }

  bool parse_bool(const std::string& key) {
    for (const std::string_view word : {std::string_view("True"), std::string_view("False")}) {
      if (text_.substr(pos_, word.size()) == word) {
        const std::size_t end = pos_ + word.size();
        const bool word_ends =
            end >= text_.size() ||
            !(std::isalnum(static_cast<unsigned char>(text_[end])) != 0 || text_[end] == '_');
        if (word_ends) {
          pos_ = end;
          return word == "True";
        }
      }
    }
    malformed("'" + key + "' at offset " + where() + " must be True or False, found " + found());
  }

  std::vector<std::size_t> parse_shape() {
    if (!consume('(')) {
      malformed("bad shape tuple at offset " + where() +
                ": expected a tuple of non-negative integers such as (2, 3), found " + found());
    }
    std::vector<std::size_t> shape;
    skip_space();
    if (consume(')')) return shape;  // 0-d array.
    while (true) {
      shape.push_back(parse_dim());
      skip_space();
      if (consume(',')) {
        skip_space();
        if (consume(')')) return shape;
        continue;
      }
      if (consume(')')) {
        if (shape.size() == 1) {
          malformed("bad shape tuple: (" + std::to_string(shape[0]) +
                    ") is an integer, not a tuple (expected (" + std::to_string(shape[0]) + ",))");
        }
        return shape;
      }
      if (at_end()) malformed("bad shape tuple: unterminated (expected ')')");
      malformed("bad shape tuple at offset " + where() + ": expected ',' or ')', found " + found());
    }
  }

  std::size_t parse_dim() {
    if (peek() == '-') {
      malformed("bad shape tuple at offset " + where() +
                ": negative dimension (expected a non-negative integer)");
    }
    if (peek() < '0' || peek() > '9') {
      malformed("bad shape tuple at offset " + where() +
                ": expected a non-negative integer, found " + found());
    }
    const std::size_t start = pos_;
    std::size_t value = 0;
    while (peek() >= '0' && peek() <= '9') {
      const auto digit = static_cast<std::size_t>(peek() - '0');
      if (value > (std::numeric_limits<std::size_t>::max() - digit) / 10) {
        malformed("shape dimension at offset " + std::to_string(start) +
                  " overflows size_t (shape product overflow)");
      }
      value = value * 10 + digit;
      ++pos_;
    }
    if (peek() == 'L' || peek() == 'l') ++pos_;  // Python 2 long suffix, as in old files.
    return value;
  }

  const std::string& path_;
  std::string_view text_;
  std::size_t pos_ = 0;
};

// Reads exactly size bytes; the caller has already checked the file is long enough.
void read_exact(std::FILE* file, void* destination, std::size_t size, const std::string& path,
                const char* what) {
  if (size == 0) return;
  if (std::fread(destination, 1, size, file) != size) {
    const int error = errno;
    if (std::ferror(file) != 0)
      fail(path, std::string("read error in ") + what + ": " + errno_message(error));
    fail(path, std::string("unexpected end of file in ") + what + " (file changed while reading?)");
  }
}

}  // namespace

Array load(const std::string& path) {
  errno = 0;
  const File file(std::fopen(path.c_str(), "rb"));
  if (!file) fail(path, "cannot open: " + errno_message(errno));
  std::error_code ec;
  const std::uintmax_t file_size = std::filesystem::file_size(path, ec);
  if (ec) fail(path, "cannot read: " + ec.message());

  // Preamble: magic, major and minor version, then a 2-byte (v1) or 4-byte (v2, v3) header length.
  char magic[6] = {};
  if (file_size < kMagic.size()) {
    fail(path,
         "not a .npy file (bad magic): file has only " + std::to_string(file_size) + " bytes");
  }
  read_exact(file.get(), magic, sizeof(magic), path, "magic");
  if (std::string_view(magic, sizeof(magic)) != kMagic) {
    fail(path, "not a .npy file (bad magic): expected \\x93NUMPY, found " +
                   printable(std::string_view(magic, sizeof(magic))));
  }
  if (file_size < 8) {
    fail(path, "truncated preamble: file has " + std::to_string(file_size) +
                   " bytes (expected at least 10)");
  }
  unsigned char version[2] = {};
  read_exact(file.get(), version, sizeof(version), path, "version");
  const unsigned major = version[0];
  const unsigned minor = version[1];
  if (major < 1 || major > 3 || minor != 0) {
    fail(path, "unsupported format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " (expected 1.0, 2.0 or 3.0)");
  }
  const std::size_t length_size = major == 1 ? 2 : 4;
  const std::size_t preamble_size = 8 + length_size;
  if (file_size < preamble_size) {
    fail(path, "truncated preamble: file has " + std::to_string(file_size) +
                   " bytes (expected at least " + std::to_string(preamble_size) + " for version " +
                   std::to_string(major) + ".0)");
  }
  unsigned char length_bytes[4] = {};
  read_exact(file.get(), length_bytes, length_size, path, "header length");
  std::size_t header_size = 0;
  for (std::size_t i = length_size; i-- > 0;) header_size = (header_size << 8) | length_bytes[i];
  if (file_size - preamble_size < header_size) {
    fail(path, "truncated header: header length field says " + std::to_string(header_size) +
                   " bytes, file has " + std::to_string(file_size - preamble_size) + " after the " +
                   std::to_string(preamble_size) + "-byte preamble");
  }
  std::string header_text(header_size, '\0');
  read_exact(file.get(), header_text.data(), header_size, path, "header");
  const Header header = HeaderParser(path, header_text).parse();

  Dtype dtype;
  std::size_t item_size;
  if (header.descr == "<f4") {
    dtype = Dtype::f32;
    item_size = 4;
  } else if (header.descr == "<f2") {
    dtype = Dtype::f16;
    item_size = 2;
  } else {
    fail(path, "dtype '" + printable(header.descr) +
                   "' is not supported (expected '<f4' float32 or '<f2' float16)");
  }
  if (header.fortran_order) fail(path, "fortran_order True is not supported (expected C order)");

  const std::optional<std::size_t> count = element_count(header.shape);
  if (!count || *count > std::numeric_limits<std::size_t>::max() / item_size) {
    fail(path, "shape product overflow: shape " + shape_to_string(header.shape) + " of '" +
                   header.descr + "' has more bytes than size_t can hold");
  }
  const std::size_t data_size = *count * item_size;
  const std::uintmax_t data_offset = preamble_size + header_size;
  const std::uintmax_t available = file_size - data_offset;
  const std::string context = " after the " + std::to_string(data_offset) + "-byte header (shape " +
                              shape_to_string(header.shape) + ", '" + header.descr + "')";
  if (available < data_size) {
    fail(path, "truncated data: header says " + std::to_string(data_size) + " bytes, file has " +
                   std::to_string(available) + context);
  }
  if (available > data_size) {
    fail(path, "trailing data: header says " + std::to_string(data_size) + " bytes, file has " +
                   std::to_string(available) + context + " (expected exactly " +
                   std::to_string(data_size) + " bytes)");
  }

  Array array{header.shape, dtype, std::vector<float>(*count)};
  if (dtype == Dtype::f32) {
    read_exact(file.get(), array.data.data(), data_size, path, "data");
  } else {
    std::vector<std::uint16_t> halves(*count);
    read_exact(file.get(), halves.data(), data_size, path, "data");
    halves_to_floats(halves, array.data);
  }
  return array;
}

void save_f32(const std::string& path, const std::vector<std::size_t>& shape,
              std::span<const float> data) {
  const std::optional<std::size_t> count = element_count(shape);
  if (!count || *count > std::numeric_limits<std::size_t>::max() / sizeof(float)) {
    throw std::invalid_argument(path + ": shape " + shape_to_string(shape) +
                                " overflows size_t (shape product overflow)");
  }
  if (*count != data.size()) {
    throw std::invalid_argument(path + ": data has " + std::to_string(data.size()) +
                                " elements but shape " + shape_to_string(shape) + " needs " +
                                std::to_string(*count));
  }

  const std::string dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_to_string(shape) + ", }";
  // Version 1.0 stores the header length in 2 bytes; like numpy, fall back to version 2.0 (4 bytes)
  // only for headers too long for that, which takes thousands of dimensions.
  std::size_t preamble_size = 10;
  auto padded = [&] { return (preamble_size + dict.size() + 1 + 63) / 64 * 64; };
  unsigned char major = 1;
  if (padded() - preamble_size > 0xffff) {
    major = 2;
    preamble_size = 12;
  }
  const std::size_t header_size = padded() - preamble_size;

  std::string bytes(kMagic);
  bytes += static_cast<char>(major);
  bytes += '\0';
  for (std::size_t i = 0; i < preamble_size - 8; ++i) {
    bytes += static_cast<char>((header_size >> (8 * i)) & 0xff);
  }
  bytes += dict;
  bytes.append(header_size - dict.size() - 1, ' ');
  bytes += '\n';

  errno = 0;
  File file(std::fopen(path.c_str(), "wb"));
  if (!file) fail(path, "cannot open for writing: " + errno_message(errno));
  const auto write_failed = [&] {
    const int error = errno;
    fail(path, "write error: " + errno_message(error));
  };
  if (std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size()) write_failed();
  if (!data.empty() &&
      std::fwrite(data.data(), sizeof(float), data.size(), file.get()) != data.size()) {
    write_failed();
  }
  if (std::fclose(file.release()) != 0) write_failed();
}

}  // namespace gqavk::npy
