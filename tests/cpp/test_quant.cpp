// Fixed-point quantization from C++: the lecture's Q8.8 example, rounding modes against plain
// loops, saturation at both ends of every code width, and the argument errors.
#include <gtest/gtest.h>
#include <seisoku/quant.hpp>
#include <seisoku/seisoku.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

using seisoku::DType;
using seisoku::Rounding;
using seisoku::Tensor;

template <class T>
Tensor tensor_of(const std::vector<double>& v, DType dtype) {
  Tensor t = Tensor::empty({static_cast<std::int64_t>(v.size())}, dtype);
  for (std::size_t i = 0; i < v.size(); ++i) t.data_as<T>()[i] = static_cast<T>(v[i]);
  return t;
}

// Codes of x (float64) as int64 values.
std::vector<std::int64_t> codes_of(const std::vector<double>& x, int int_bits, int frac_bits, Rounding r) {
  const Tensor tx = tensor_of<double>(x, DType::float64);
  const DType dt = seisoku::fixed_point_dtype(int_bits, frac_bits);
  Tensor out = Tensor::empty(tx.shape(), dt);
  seisoku::quantize_fixed(tx, out, int_bits, frac_bits, r, 7, 3);
  std::vector<std::int64_t> c(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (dt == DType::int8) c[i] = out.data_as<std::int8_t>()[i];
    else if (dt == DType::int16) c[i] = out.data_as<std::int16_t>()[i];
    else c[i] = out.data_as<std::int32_t>()[i];
  }
  return c;
}

TEST(Quant, LectureExampleQ8_8Truncated) {
  // float32 0.12492940522023 -> 0000 0000 . 0001 1111 = 31 -> 0.12109375.
  const Tensor x = tensor_of<float>({0.12492940522023}, DType::float32);
  ASSERT_EQ(seisoku::fixed_point_dtype(8, 8), DType::int16);
  Tensor code = Tensor::empty({1}, DType::int16);
  seisoku::quantize_fixed(x, code, 8, 8, Rounding::truncate);
  EXPECT_EQ(code.data_as<std::int16_t>()[0], 31);
  Tensor back = Tensor::empty({1}, DType::float32);
  seisoku::dequantize_fixed(code, back, 8);
  EXPECT_EQ(back.data_as<float>()[0], 0.12109375f);
  seisoku::quantize_fixed(x, code, 8, 8, Rounding::nearest);
  EXPECT_EQ(code.data_as<std::int16_t>()[0], 32);  // 31.98 rounds up
}

TEST(Quant, RoundingModesMatchLoops) {
  std::vector<double> x;
  for (int i = -200; i <= 200; ++i) x.push_back(i * 0.0371 + (i % 7) * 1e-3);
  x.push_back(2.5 / 256);  // ties: 2.5 and -3.5 codes go to the even neighbour
  x.push_back(-3.5 / 256);
  const auto t = codes_of(x, 8, 8, Rounding::truncate);
  const auto n = codes_of(x, 8, 8, Rounding::nearest);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double s = x[i] * 256.0;
    EXPECT_EQ(t[i], static_cast<std::int64_t>(std::floor(s))) << x[i];
    EXPECT_EQ(n[i], static_cast<std::int64_t>(std::nearbyint(s))) << x[i];
  }
  EXPECT_EQ(n[n.size() - 2], 2);
  EXPECT_EQ(n[n.size() - 1], -4);
  // Stochastic rounding picks one of the two neighbours, reproducibly.
  const auto s1 = codes_of(x, 8, 8, Rounding::stochastic), s2 = codes_of(x, 8, 8, Rounding::stochastic);
  EXPECT_EQ(s1, s2);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_TRUE(s1[i] == t[i] || s1[i] == t[i] + 1) << x[i];
}

TEST(Quant, SaturatesAtBothEndsOfEveryWidth) {
  const std::vector<double> x = {1e30, -1e30, 1e300, -1e300, 127.999, -128.0, -128.5};
  for (auto [ib, fb] : {std::pair{4, 4}, std::pair{8, 8}, std::pair{16, 16}, std::pair{1, 31}, std::pair{32, 0}}) {
    const std::int64_t hi = (std::int64_t{1} << (ib + fb - 1)) - 1, lo = -(std::int64_t{1} << (ib + fb - 1));
    for (Rounding r : {Rounding::truncate, Rounding::nearest, Rounding::stochastic}) {
      const auto c = codes_of(x, ib, fb, r);
      EXPECT_EQ(c[0], hi);
      EXPECT_EQ(c[1], lo);
      EXPECT_EQ(c[2], hi);
      EXPECT_EQ(c[3], lo);
    }
  }
  // Q8.8: 127.999 is above the largest value 127.99609375; -128 is the smallest exactly.
  const auto c = codes_of(x, 8, 8, Rounding::nearest);
  EXPECT_EQ(c[4], 32767);
  EXPECT_EQ(c[5], -32768);
  EXPECT_EQ(c[6], -32768);
}

TEST(Quant, BadArgumentsAreInvalidArgument) {
  const Tensor x = tensor_of<float>({1.0, std::numeric_limits<double>::quiet_NaN()}, DType::float32);
  Tensor out = Tensor::empty({2}, DType::int16);
  auto message = [&](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { seisoku::quantize_fixed(x, out, 8, 8, Rounding::nearest); }).find("argument 'x'"),
            std::string::npos);
  const Tensor ok = tensor_of<float>({1.0, 2.0}, DType::float32);
  EXPECT_NE(message([&] { seisoku::quantize_fixed(ok, out, 0, 16, Rounding::nearest); }).find("'int_bits'"),
            std::string::npos);
  EXPECT_NE(message([&] { seisoku::quantize_fixed(ok, out, 17, -1, Rounding::nearest); }).find("'frac_bits'"),
            std::string::npos);
  EXPECT_NE(message([&] { seisoku::quantize_fixed(ok, out, 8, 4, Rounding::nearest); }).find("8, 16 or 32"),
            std::string::npos);
  EXPECT_NE(message([&] { seisoku::quantize_fixed(ok, out, 4, 4, Rounding::nearest); }).find("'out'"),
            std::string::npos);
  EXPECT_NE(message([&] { seisoku::rounding_from_name("up"); }).find("'rounding'"), std::string::npos);
  Tensor back = Tensor::empty({2}, DType::float32);
  EXPECT_NE(message([&] { seisoku::dequantize_fixed(out, back, 16); }).find("'frac_bits'"), std::string::npos);
}

}  // namespace
