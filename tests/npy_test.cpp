#include "npy.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace gqavk::npy {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Little-endian bytes of float32 values.
std::string f32_bytes(const std::vector<float>& values) {
  std::string out;
  for (const float v : values) {
    const auto bits = std::bit_cast<std::uint32_t>(v);
    for (int i = 0; i < 4; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xffu);
  }
  return out;
}

// Little-endian bytes of float16 bit patterns.
std::string f16_bytes(const std::vector<std::uint16_t>& values) {
  std::string out;
  for (const std::uint16_t v : values) {
    out += static_cast<char>(v & 0xffu);
    out += static_cast<char>(v >> 8);
  }
  return out;
}

// Magic, version and header length field (2 bytes for version 1, else 4).
std::string preamble(int major, int minor, std::size_t header_size) {
  std::string out("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += static_cast<char>(minor);
  const int width = major == 1 ? 2 : 4;
  for (int i = 0; i < width; ++i) out += static_cast<char>((header_size >> (8 * i)) & 0xffu);
  return out;
}

// A complete file image: the dict padded with spaces and a newline to a multiple of 64 bytes.
std::string npy_file(const std::string& dict, const std::string& data, int major = 1) {
  const std::size_t preamble_size = major == 1 ? 10 : 12;
  const std::size_t total = (preamble_size + dict.size() + 1 + 63) / 64 * 64;
  const std::string header =
      dict + std::string(total - preamble_size - dict.size() - 1, ' ') + "\n";
  return preamble(major, 0, header.size()) + header + data;
}

std::string dict(const std::string& descr, const std::string& shape,
                 const std::string& fortran_order = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran_order + ", 'shape': " + shape +
         ", }";
}

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    std::random_device random;
    for (int attempt = 0;; ++attempt) {
      dir_ = fs::temp_directory_path() /
             ("gqavk_npy_test_" + name + "_" + std::to_string(random()) + std::to_string(attempt));
      if (fs::create_directory(dir_)) break;
      ASSERT_LT(attempt, 100) << "cannot create a fresh temp dir";
    }
  }

  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write(const std::string& name, const std::string& bytes) const {
    const std::string file = path(name);
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good()) << file;
    return file;
  }

  static std::string read(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // The message of the std::runtime_error that load(file) throws, or "" (and a failure) if none.
  static std::string load_error(const std::string& file) {
    try {
      load(file);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    ADD_FAILURE() << "load(" << file << ") did not throw std::runtime_error";
    return "";
  }

  fs::path dir_;
};

std::vector<float> iota_data(std::size_t count) {
  std::vector<float> data(count);
  for (std::size_t i = 0; i < count; ++i) data[i] = static_cast<float>(i) * 0.25f - 3.0f;
  return data;
}

class NpyRoundTripTest : public NpyTest,
                         public ::testing::WithParamInterface<std::vector<std::size_t>> {};

TEST_P(NpyRoundTripTest, SaveThenLoad) {
  const std::vector<std::size_t>& shape = GetParam();
  std::size_t count = 1;
  for (const std::size_t d : shape) count *= d;
  const std::vector<float> data = iota_data(count);
  const std::string file = path("round_trip.npy");
  save_f32(file, shape, data);

  const std::string bytes = read(file);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const std::size_t header_end =
      10 + static_cast<unsigned char>(bytes[8]) + 256 * static_cast<unsigned char>(bytes[9]);
  EXPECT_EQ(header_end % 64, 0u);
  EXPECT_EQ(bytes[header_end - 1], '\n');
  EXPECT_EQ(bytes.size(), header_end + 4 * count);

  const Array array = load(file);
  EXPECT_EQ(array.shape, shape);
  EXPECT_EQ(array.dtype, Dtype::f32);
  EXPECT_EQ(array.data, data);
}

INSTANTIATE_TEST_SUITE_P(Shapes, NpyRoundTripTest,
                         ::testing::Values(std::vector<std::size_t>{}, std::vector<std::size_t>{0},
                                           std::vector<std::size_t>{2, 3, 4},
                                           std::vector<std::size_t>{1, 32, 1, 128},
                                           std::vector<std::size_t>{7},
                                           std::vector<std::size_t>{3, 0, 5}));

TEST_F(NpyTest, SaveWritesNumpyStyleHeader) {
  const std::string file = path("header.npy");
  save_f32(file, {2, 3}, iota_data(6));
  const std::string expected_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_EQ(read(file), npy_file(expected_dict, f32_bytes(iota_data(6))));

  save_f32(file, {5}, iota_data(5));
  EXPECT_THAT(read(file), HasSubstr("'shape': (5,), }"));
  save_f32(file, {}, iota_data(1));
  EXPECT_THAT(read(file), HasSubstr("'shape': (), }"));
}

TEST_F(NpyTest, SaveKeepsSpecialValuesBitExact) {
  const std::vector<float> data = {-0.0f, std::numeric_limits<float>::infinity(),
                                   std::numeric_limits<float>::denorm_min(),
                                   std::numeric_limits<float>::quiet_NaN()};
  const std::string file = path("special.npy");
  save_f32(file, {4}, data);
  const Array array = load(file);
  ASSERT_EQ(array.data.size(), data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint32_t>(array.data[i]), std::bit_cast<std::uint32_t>(data[i]));
  }
}

TEST_F(NpyTest, SaveRejectsSizeMismatch) {
  const std::string file = path("mismatch.npy");
  try {
    save_f32(file, {2, 3}, iota_data(5));
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), AllOf(StartsWith(file), HasSubstr("data has 5 elements"),
                                HasSubstr("(2, 3) needs 6")));
  }
  EXPECT_FALSE(fs::exists(file));
  EXPECT_THROW(save_f32(file, {std::size_t{1} << 62, 8}, iota_data(1)), std::invalid_argument);
}

TEST_F(NpyTest, SaveReportsUnwritablePath) {
  const std::string file = path("no_such_dir/out.npy");
  try {
    save_f32(file, {1}, iota_data(1));
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), AllOf(StartsWith(file + ": "), HasSubstr("cannot open for writing"),
                                HasSubstr("No such file or directory")));
  }
}

TEST_F(NpyTest, LoadsHandWrittenF16) {
  const std::string file = write(
      "half.npy", npy_file(dict("<f2", "(2, 2)"), f16_bytes({0x3c00, 0xc000, 0x3800, 0x7bff})));
  const Array array = load(file);
  EXPECT_EQ(array.shape, (std::vector<std::size_t>{2, 2}));
  EXPECT_EQ(array.dtype, Dtype::f16);
  EXPECT_EQ(array.data, (std::vector<float>{1.0f, -2.0f, 0.5f, 65504.0f}));
}

TEST_F(NpyTest, LoadsF16SpecialValues) {
  const std::string file =
      write("special.npy",
            npy_file(dict("<f2", "(5,)"), f16_bytes({0x0001, 0x8000, 0x7c00, 0xfc00, 0x7e00})));
  const Array array = load(file);
  ASSERT_EQ(array.data.size(), 5u);
  EXPECT_EQ(array.data[0], std::ldexp(1.0f, -24));
  EXPECT_EQ(std::bit_cast<std::uint32_t>(array.data[1]), 0x80000000u);
  EXPECT_EQ(array.data[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(array.data[3], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(array.data[4]));
}

TEST_F(NpyTest, LoadsF16ZeroDimensionalAndEmpty) {
  const Array scalar = load(write("scalar.npy", npy_file(dict("<f2", "()"), f16_bytes({0x4200}))));
  EXPECT_TRUE(scalar.shape.empty());
  EXPECT_EQ(scalar.data, std::vector<float>{3.0f});

  const Array empty = load(write("empty.npy", npy_file(dict("<f2", "(4, 0)"), "")));
  EXPECT_EQ(empty.shape, (std::vector<std::size_t>{4, 0}));
  EXPECT_TRUE(empty.data.empty());

  // A zero dimension makes the array empty even if the other dimensions are huge.
  const Array huge_empty =
      load(write("huge_empty.npy",
                 npy_file(dict("<f4", "(0, 18446744073709551615, 18446744073709551615)"), "")));
  EXPECT_EQ(huge_empty.shape.size(), 3u);
  EXPECT_TRUE(huge_empty.data.empty());
}

TEST_F(NpyTest, LoadsVersion2And3Headers) {
  const Array v2 = load(write("v2.npy", npy_file(dict("<f4", "(3,)"), f32_bytes({1, 2, 3}), 2)));
  EXPECT_EQ(v2.shape, std::vector<std::size_t>{3});
  EXPECT_EQ(v2.data, (std::vector<float>{1, 2, 3}));

  const Array v3 =
      load(write("v3.npy", npy_file(dict("<f2", "(1, 2)"), f16_bytes({0x3c00, 0x4000}), 3)));
  EXPECT_EQ(v3.shape, (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(v3.dtype, Dtype::f16);
  EXPECT_EQ(v3.data, (std::vector<float>{1, 2}));
}

TEST_F(NpyTest, LoadsHeadersWithAnyKeyOrderAndSpacing) {
  const std::vector<std::string> dicts = {
      "{'shape': (2,), 'descr': '<f4', 'fortran_order': False}",
      "{ \"fortran_order\" :False ,\"shape\":( 2 , ) ,\t\"descr\" : \"<f4\" , }",
      "{'descr':'<f4','fortran_order':False,'shape':(2L,)}",
      "{\n  'descr': '<f4',\n  'fortran_order': False,\n  'shape': (2,)\n}",
  };
  for (const std::string& d : dicts) {
    SCOPED_TRACE(d);
    const Array array = load(write("spacing.npy", npy_file(d, f32_bytes({4, 5}))));
    EXPECT_EQ(array.shape, std::vector<std::size_t>{2});
    EXPECT_EQ(array.data, (std::vector<float>{4, 5}));
  }
  // Unpadded header without a trailing newline.
  const std::string bare = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}";
  const Array array = load(write("bare.npy", preamble(1, 0, bare.size()) + bare + f32_bytes({7})));
  EXPECT_EQ(array.data, std::vector<float>{7});
}

TEST_F(NpyTest, MissingFile) {
  const std::string file = path("missing.npy");
  EXPECT_THAT(load_error(file),
              AllOf(StartsWith(file + ": "), HasSubstr("cannot open: No such file or directory")));
}

TEST_F(NpyTest, Directory) {
  const std::string file = path("subdir.npy");
  fs::create_directory(file);
  EXPECT_THAT(load_error(file), AllOf(StartsWith(file + ": "), HasSubstr("Is a directory")));
}

TEST_F(NpyTest, TruncatedDataMessage) {
  const std::string file =
      write("v.npy", npy_file(dict("<f4", "(32, 32)"), std::string(100, '\0')));
  EXPECT_THAT(load_error(file),
              AllOf(StartsWith(file + ": "),
                    HasSubstr("truncated data: header says 4096 bytes, file has 100")));
}

struct MalformedCase {
  std::string name;
  std::string bytes;
  std::string phrase;
};

// Keeps gtest from dumping the raw bytes of a case when it fails.
void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

class NpyMalformedTest : public NpyTest, public ::testing::WithParamInterface<MalformedCase> {};

TEST_P(NpyMalformedTest, ThrowsWithPathAndPhrase) {
  const std::string file = write(GetParam().name + ".npy", GetParam().bytes);
  EXPECT_THAT(load_error(file), AllOf(StartsWith(file + ": "), HasSubstr(GetParam().phrase)));
}

std::string f32_file(const std::string& d, std::size_t count) {
  return npy_file(d, f32_bytes(std::vector<float>(count, 1.0f)));
}

std::string good_dict_with(const std::string& replace, const std::string& with) {
  std::string d = dict("<f4", "(2, 3)");
  d.replace(d.find(replace), replace.size(), with);
  return d;
}

const std::string kUnterminated = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ";

INSTANTIATE_TEST_SUITE_P(
    Cases, NpyMalformedTest,
    ::testing::Values(
        MalformedCase{"bad_magic", "\x93NUMPZ" + f32_file(dict("<f4", "(1,)"), 1).substr(6),
                      "not a .npy file (bad magic)"},
        MalformedCase{"empty_file", "", "not a .npy file (bad magic)"},
        MalformedCase{"text_file", "hello, this is not a numpy file\n",
                      "not a .npy file (bad magic)"},
        MalformedCase{"truncated_preamble_v1", std::string("\x93NUMPY\x01\x00\x10", 9),
                      "truncated preamble"},
        MalformedCase{"truncated_preamble_v2", std::string("\x93NUMPY\x02\x00\x10\x00", 10),
                      "truncated preamble"},
        MalformedCase{"version_4_0", preamble(4, 0, 0) + dict("<f4", "()"),
                      "unsupported format version 4.0 (expected 1.0, 2.0 or 3.0)"},
        MalformedCase{"version_1_1", preamble(1, 1, 0), "unsupported format version 1.1"},
        MalformedCase{"version_0_0", preamble(0, 0, 0), "unsupported format version 0.0"},
        MalformedCase{"truncated_header", f32_file(dict("<f4", "(1,)"), 1).substr(0, 60),
                      "truncated header: header length field says 118 bytes, file has 50 after "
                      "the 10-byte preamble"},
        MalformedCase{"empty_header", preamble(1, 0, 0), "expected '{' at offset 0"},
        MalformedCase{"not_a_dict", f32_file("['descr', '<f4']", 1), "expected '{'"},
        MalformedCase{"dtype_f8", f32_file(dict("<f8", "(2,)"), 4),
                      "dtype '<f8' is not supported (expected '<f4' float32 or '<f2' float16)"},
        MalformedCase{"dtype_big_endian", f32_file(dict(">f4", "(2,)"), 2),
                      "dtype '>f4' is not supported"},
        MalformedCase{"dtype_pipe_f2", f32_file(dict("|f2", "(2,)"), 1),
                      "dtype '|f2' is not supported"},
        MalformedCase{"dtype_int", f32_file(dict("<i4", "(2,)"), 2),
                      "dtype '<i4' is not supported"},
        MalformedCase{
            "dtype_structured",
            f32_file("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 1),
            "must be a dtype string"},
        MalformedCase{"fortran_order", f32_file(dict("<f4", "(2, 3)", "True"), 6),
                      "fortran_order True is not supported (expected C order)"},
        MalformedCase{"fortran_order_not_bool", f32_file(dict("<f4", "(2, 3)", "0"), 6),
                      "'fortran_order' at offset 34 must be True or False, found '0'"},
        MalformedCase{"fortran_order_prefix", f32_file(dict("<f4", "(2, 3)", "Falsey"), 6),
                      "must be True or False"},
        MalformedCase{"missing_descr", f32_file("{'fortran_order': False, 'shape': (2, 3), }", 6),
                      "missing key 'descr' (expected 'descr', 'fortran_order' and 'shape')"},
        MalformedCase{"missing_fortran_order", f32_file("{'descr': '<f4', 'shape': (2, 3), }", 6),
                      "missing key 'fortran_order'"},
        MalformedCase{"missing_shape", f32_file("{'descr': '<f4', 'fortran_order': False}", 6),
                      "missing key 'shape'"},
        MalformedCase{"empty_dict", f32_file("{}", 0), "missing key 'descr'"},
        MalformedCase{"duplicate_key", f32_file(good_dict_with("}", "'shape': (6,), }"), 6),
                      "duplicate key 'shape'"},
        MalformedCase{"unexpected_key", f32_file(good_dict_with("}", "'extra': 1, }"), 6),
                      "unexpected key 'extra'"},
        MalformedCase{"unquoted_key", f32_file(good_dict_with("'descr'", "descr"), 6),
                      "expected a quoted key or '}' at offset 1, found 'd'"},
        MalformedCase{"missing_colon", f32_file(good_dict_with("'descr':", "'descr'"), 6),
                      "expected ':' after key 'descr'"},
        MalformedCase{"missing_comma", f32_file(good_dict_with("'<f4',", "'<f4'"), 6),
                      "expected ',' or '}' after the value of 'descr'"},
        MalformedCase{"shape_negative", f32_file(dict("<f4", "(2, -3)"), 6), "negative dimension"},
        MalformedCase{"shape_not_tuple", f32_file(dict("<f4", "(3)"), 3),
                      "bad shape tuple: (3) is an integer, not a tuple (expected (3,))"},
        MalformedCase{"shape_list", f32_file(dict("<f4", "[2, 3]"), 6), "bad shape tuple"},
        MalformedCase{"shape_name", f32_file(dict("<f4", "(2, x)"), 6),
                      "expected a non-negative integer, found 'x'"},
        MalformedCase{"shape_float", f32_file(dict("<f4", "(2.0, 3)"), 6),
                      "expected ',' or ')', found '.'"},
        MalformedCase{"shape_lone_comma", f32_file(dict("<f4", "(,)"), 1),
                      "expected a non-negative integer, found ','"},
        MalformedCase{"shape_unterminated",
                      f32_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", 6),
                      "bad shape tuple: unterminated (expected ')')"},
        MalformedCase{"unterminated_dict", f32_file(kUnterminated, 6), "unterminated dict"},
        MalformedCase{"unterminated_dict_no_comma",
                      f32_file(kUnterminated.substr(0, kUnterminated.size() - 2), 6),
                      "unterminated dict (expected ',' or '}')"},
        MalformedCase{"unterminated_string", f32_file("{'descr': '<f4", 6),
                      "unterminated string in 'descr'"},
        MalformedCase{"text_after_dict", f32_file(dict("<f4", "(2, 3)") + " junk", 6),
                      "unexpected text after the closing '}'"},
        MalformedCase{"truncated_data", f32_file(dict("<f4", "(2, 3)"), 5),
                      "truncated data: header says 24 bytes, file has 20"},
        MalformedCase{"trailing_data", f32_file(dict("<f4", "(2, 3)"), 7),
                      "trailing data: header says 24 bytes, file has 28"},
        MalformedCase{"trailing_data_f16", npy_file(dict("<f2", "(2, 3)"), std::string(13, 'x')),
                      "(expected exactly 12 bytes)"},
        MalformedCase{"element_count_overflow",
                      f32_file(dict("<f4", "(4294967296, 4294967296, 2)"), 1),
                      "shape product overflow"},
        MalformedCase{"byte_count_overflow", f32_file(dict("<f4", "(4611686018427387904,)"), 1),
                      "shape product overflow"},
        MalformedCase{"dimension_overflow",
                      f32_file(dict("<f4", "(123456789012345678901234567890,)"), 1),
                      "shape product overflow"}),
    [](const ::testing::TestParamInfo<MalformedCase>& param_info) {
      return param_info.param.name;
    });

}  // namespace
}  // namespace gqavk::npy
