// Elementwise ops, casts, reductions, GEMM and the losses against plain double-precision loops.
#include <gtest/gtest.h>
#include <seisoku/seisoku.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

using seisoku::Device;
using seisoku::DType;
using seisoku::Shape;
using seisoku::Tensor;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Unit roundoff of a float dtype.
double unit_roundoff(DType dtype) { return dtype == DType::float32 ? 0x1p-24 : 0x1p-53; }

// Deterministic values in [-1, 1); every tenth one is exactly zero.
std::vector<double> test_values(std::int64_t n, std::uint64_t seed) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 12345;
  for (std::size_t i = 0; i < v.size(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = (i % 10 == 3) ? 0.0 : static_cast<double>(s >> 11) * 0x1p-52 - 1.0;
  }
  return v;
}

// A float32 or float64 tensor holding `values` (rounded to the dtype).
Tensor make(const std::vector<double>& values, DType dtype, const Shape& shape) {
  Tensor t = Tensor::empty(shape, dtype);
  EXPECT_EQ(static_cast<std::size_t>(t.numel()), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::float32) t.data_as<float>()[i] = static_cast<float>(values[i]);
    else t.data_as<double>()[i] = values[i];
  }
  return t;
}
Tensor make(const std::vector<double>& values, DType dtype) {
  return make(values, dtype, {static_cast<std::int64_t>(values.size())});
}

std::vector<double> read(const Tensor& t) {
  std::vector<double> v(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = t.dtype() == DType::float32 ? t.data_as<float>()[i] : t.data_as<double>()[i];
  return v;
}

double read1(const Tensor& t) { return read(t).at(0); }

// Expects fn() to throw std::invalid_argument whose message contains `tag`.
void expect_invalid(const std::function<void()>& fn, const std::string& tag) {
  try {
    fn();
    ADD_FAILURE() << "expected std::invalid_argument with " << tag;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(tag), std::string::npos) << e.what();
  }
}

// ---- independent references for the 16-bit float formats and int conversions ----

struct Format16 {
  int mant_bits, exp_bits;
};
constexpr Format16 kHalf{10, 5};
constexpr Format16 kBFloat16{7, 8};

// Value of a non-negative code; the infinity code decodes to 2^(emax + 1).
double decode16(std::uint32_t code, Format16 f) {
  const int bias = (1 << (f.exp_bits - 1)) - 1;
  const std::uint32_t e = code >> f.mant_bits, m = code & ((1u << f.mant_bits) - 1);
  if (e == 0) return std::ldexp(static_cast<double>(m), 1 - bias - f.mant_bits);
  return std::ldexp(static_cast<double>((1u << f.mant_bits) + m), static_cast<int>(e) - bias - f.mant_bits);
}

// Bits of x rounded to nearest even in format f, by search over the codes (x not NaN).
std::uint16_t round16(double x, Format16 f) {
  const std::uint32_t inf_code = ((1u << f.exp_bits) - 1) << f.mant_bits;
  const std::uint32_t sign = std::signbit(x) ? 0x8000u : 0u;
  const double a = std::fabs(x);
  std::uint32_t code;
  if (a >= decode16(inf_code, f)) {
    code = inf_code;
  } else {
    std::uint32_t lo = 0, hi = inf_code;  // decode16(lo) <= a < decode16(hi)
    while (hi - lo > 1) {
      const std::uint32_t mid = (lo + hi) / 2;
      (decode16(mid, f) <= a ? lo : hi) = mid;
    }
    const double below = a - decode16(lo, f), above = decode16(hi, f) - a;
    code = below < above ? lo : above < below ? hi : ((lo & 1u) ? hi : lo);
  }
  return static_cast<std::uint16_t>(sign | code);
}

bool is_nan16(std::uint16_t bits, Format16 f) {
  const std::uint32_t inf_code = ((1u << f.exp_bits) - 1) << f.mant_bits;
  return (bits & 0x7fffu) > inf_code;
}

// Float to int as documented: truncate toward zero, saturate, NaN -> 0.
template <class I>
std::int64_t ref_to_int(double x) {
  if (std::isnan(x)) return 0;
  const double t = std::trunc(x);
  if (t <= static_cast<double>(std::numeric_limits<I>::lowest())) return std::numeric_limits<I>::lowest();
  if (t >= static_cast<double>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<std::int64_t>(t);
}

// The expected stored bits of `value` converted to `dtype` (low itemsize bytes).
std::uint64_t ref_bits(DType dtype, double value) {
  auto low = [](std::int64_t v, int bytes) {
    const auto u = static_cast<std::uint64_t>(v);
    return bytes == 8 ? u : u & ((std::uint64_t{1} << (8 * bytes)) - 1);
  };
  switch (dtype) {
    case DType::float32: {
      const float f = static_cast<float>(value);
      std::uint32_t u;
      std::memcpy(&u, &f, 4);
      return u;
    }
    case DType::float64: {
      std::uint64_t u;
      std::memcpy(&u, &value, 8);
      return u;
    }
    case DType::float16: return round16(value, kHalf);
    case DType::bfloat16: return round16(value, kBFloat16);
    case DType::int8: return low(ref_to_int<std::int8_t>(value), 1);
    case DType::uint8: return low(ref_to_int<std::uint8_t>(value), 1);
    case DType::int16: return low(ref_to_int<std::int16_t>(value), 2);
    case DType::int32: return low(ref_to_int<std::int32_t>(value), 4);
    case DType::int64: return low(ref_to_int<std::int64_t>(value), 8);
  }
  return 0;
}

std::uint64_t raw_bits(const Tensor& t, std::int64_t i) {
  std::uint64_t u = 0;
  const std::size_t size = seisoku::itemsize(t.dtype());
  std::memcpy(&u, static_cast<const unsigned char*>(t.data()) + static_cast<std::size_t>(i) * size, size);
  return u;
}

std::uint16_t cast16(double x, DType src, DType dst) {
  const Tensor s = make({x}, src);
  const Tensor d = Tensor::empty({1}, dst);
  seisoku::copy(s, d);
  return static_cast<std::uint16_t>(raw_bits(d, 0));
}

template <class I>
std::int64_t cast_to_int(double x, DType src, DType dst) {
  const Tensor s = make({x}, src);
  const Tensor d = Tensor::empty({1}, dst);
  seisoku::copy(s, d);
  return static_cast<std::int64_t>(d.data_as<I>()[0]);
}

const std::vector<DType> kAllDTypes = {DType::float32, DType::float64, DType::float16,
                                       DType::bfloat16, DType::int8,    DType::uint8,
                                       DType::int16,   DType::int32,   DType::int64};

// Test names such as "float32_n7" for the parameterized suites.
template <class Info>
std::string param_name(const Info& info) {
  const auto& p = info.param;
  std::string name = seisoku::dtype_name(std::get<0>(p));
  if constexpr (std::tuple_size_v<std::decay_t<decltype(p)>> == 3) {
    name += std::get<1>(p) ? "_T" : "_N";
    name += std::get<2>(p) ? "T" : "N";
  } else if constexpr (std::is_same_v<std::decay_t<decltype(std::get<1>(p))>, Shape>) {
    for (std::int64_t d : std::get<1>(p)) name += "_" + std::to_string(d);
  } else {
    name += "_n" + std::to_string(std::get<1>(p));
  }
  return name;
}

// ---- elementwise ----

class Elementwise : public ::testing::TestWithParam<std::tuple<DType, std::int64_t>> {};

TEST_P(Elementwise, AddMulAxpyScale) {
  const auto [dtype, n] = GetParam();
  const double u = unit_roundoff(dtype);
  const Tensor a = make(test_values(n, 1), dtype), b = make(test_values(n, 2), dtype);
  const std::vector<double> x = read(a), y = read(b);
  const Tensor out = Tensor::empty({n}, dtype);

  auto expect_sum = [&](const std::vector<double>& z) {
    for (std::int64_t i = 0; i < n; ++i)
      ASSERT_LE(std::fabs(z[i] - (x[i] + y[i])), 2 * u * (std::fabs(x[i]) + std::fabs(y[i]))) << i;
  };

  seisoku::add(a, b, out);
  expect_sum(read(out));
  std::vector<double> z;

  seisoku::mul(a, b, out);
  z = read(out);
  for (std::int64_t i = 0; i < n; ++i) ASSERT_LE(std::fabs(z[i] - x[i] * y[i]), 2 * u * std::fabs(x[i] * y[i])) << i;

  seisoku::scale(-0.3, a, out);
  z = read(out);
  for (std::int64_t i = 0; i < n; ++i) ASSERT_LE(std::fabs(z[i] - -0.3 * x[i]), 4 * u * std::fabs(0.3 * x[i])) << i;

  const Tensor acc = make(y, dtype);
  seisoku::axpy(0.7, a, acc);
  z = read(acc);
  for (std::int64_t i = 0; i < n; ++i)
    ASSERT_LE(std::fabs(z[i] - (y[i] + 0.7 * x[i])), 4 * u * (std::fabs(0.7 * x[i]) + std::fabs(y[i]))) << i;

  seisoku::add(a, b, a);
  expect_sum(read(a));
}

INSTANTIATE_TEST_SUITE_P(Sizes, Elementwise,
                         ::testing::Combine(::testing::Values(DType::float32, DType::float64),
                                            ::testing::Values<std::int64_t>(0, 1, 7, 100003)),
                         param_name<::testing::TestParamInfo<Elementwise::ParamType>>);

TEST(ElementwiseErrors, MismatchesThrow) {
  const Tensor f32 = Tensor::zeros({4}, DType::float32), f64 = Tensor::zeros({4}, DType::float64);
  const Tensor f32_5 = Tensor::zeros({5}, DType::float32), i8 = Tensor::zeros({4}, DType::int8);
  expect_invalid([&] { seisoku::add(f32, f64, f32); }, "[add]");
  expect_invalid([&] { seisoku::add(f32, f32, f64); }, "[add]");
  expect_invalid([&] { seisoku::add(f32, f32_5, f32); }, "[add]");
  expect_invalid([&] { seisoku::add(i8, i8, i8); }, "[add]");
  expect_invalid([&] { seisoku::mul(f64, f32, f64); }, "[mul]");
  expect_invalid([&] { seisoku::axpy(kNaN, f32, f32); }, "[axpy]");
  expect_invalid([&] { seisoku::axpy(1.0, f32, f64); }, "[axpy]");
  expect_invalid([&] { seisoku::scale(kInf, f32, f32); }, "[scale]");
  expect_invalid([&] { seisoku::fill(i8, kNaN); }, "[fill]");
  expect_invalid([&] { seisoku::copy(f32, f32_5); }, "[copy]");
  std::vector<float> host(4);
  const Tensor gpu_f16 = Tensor::view(host.data(), {4}, DType::float16, Device::cuda);
  expect_invalid([&] { seisoku::copy(f32, gpu_f16); }, "[copy]");
}

// fill converts one double like copy does: round to nearest even, truncate and saturate.
TEST(Fill, EveryDType) {
  for (DType dtype : kAllDTypes) {
    for (double value : {3.0, -2.5, 0.1, 1e6, -1e6, 70000.0}) {
      SCOPED_TRACE(std::string(seisoku::dtype_name(dtype)) + " " + std::to_string(value));
      const Tensor t = Tensor::empty({100003}, dtype);
      seisoku::fill(t, value);
      const std::uint64_t want = ref_bits(dtype, value);
      for (std::int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(raw_bits(t, i), want) << i;
    }
  }
  const Tensor f = Tensor::empty({3}, DType::float32);
  seisoku::fill(f, kNaN);
  for (double v : read(f)) EXPECT_TRUE(std::isnan(v));
  EXPECT_EQ(ref_bits(DType::float16, 3.0), 0x4200u);
  EXPECT_EQ(ref_bits(DType::bfloat16, -2.5), 0xC020u);
  EXPECT_EQ(ref_bits(DType::uint8, -2.5), 0u);
  EXPECT_EQ(ref_bits(DType::int16, 70000.0), 32767u);
}

// ---- casts: ties, overflow, subnormals, NaN; from float64 in one rounding ----

TEST(Cast, ToFloat16ChosenValues) {
  const DType f32 = DType::float32, f64 = DType::float64, h = DType::float16;
  EXPECT_EQ(cast16(1.0 + 0x1p-11, f32, h), 0x3C00);
  EXPECT_EQ(cast16(1.0 + 3 * 0x1p-11, f32, h), 0x3C02);
  EXPECT_EQ(cast16(1.0 + 0x1p-11 + 0x1p-20, f32, h), 0x3C01);
  EXPECT_EQ(cast16(65504.0, f32, h), 0x7BFF);
  EXPECT_EQ(cast16(65519.0, f32, h), 0x7BFF);
  EXPECT_EQ(cast16(65520.0, f32, h), 0x7C00);
  EXPECT_EQ(cast16(-1e9, f32, h), 0xFC00);
  EXPECT_EQ(cast16(kInf, f32, h), 0x7C00);
  EXPECT_EQ(cast16(-kInf, f32, h), 0xFC00);
  EXPECT_EQ(cast16(-0.0, f32, h), 0x8000);
  EXPECT_EQ(cast16(0x1p-14, f32, h), 0x0400);
  EXPECT_EQ(cast16(0x1p-24, f32, h), 0x0001);
  EXPECT_EQ(cast16(0x1p-25, f32, h), 0x0000);
  EXPECT_EQ(cast16(0x1.000002p-25, f32, h), 0x0001);
  EXPECT_EQ(cast16(3 * 0x1p-25, f32, h), 0x0002);
  EXPECT_EQ(cast16(-5 * 0x1p-24, f32, h), 0x8005);
  EXPECT_EQ(cast16(1e-9, f32, h), 0x0000);
  EXPECT_TRUE(is_nan16(cast16(kNaN, f32, h), kHalf));
  EXPECT_EQ(cast16(1.0 + 0x1p-11 + 0x1p-40, f64, h), 0x3C01);
  EXPECT_EQ(cast16(1.0 + 0x1p-11 - 0x1p-40, f64, h), 0x3C00);
  EXPECT_EQ(cast16(65520.0 - 0x1p-30, f64, h), 0x7BFF);
  EXPECT_EQ(cast16(0x1p-25 + 0x1p-60, f64, h), 0x0001);
}

TEST(Cast, ToBFloat16ChosenValues) {
  const DType f32 = DType::float32, f64 = DType::float64, b = DType::bfloat16;
  EXPECT_EQ(cast16(1.0 + 0x1p-8, f32, b), 0x3F80);
  EXPECT_EQ(cast16(1.0 + 3 * 0x1p-8, f32, b), 0x3F82);
  EXPECT_EQ(cast16(1.0 + 0x1p-8 + 0x1p-16, f32, b), 0x3F81);
  EXPECT_EQ(cast16(-2.5, f32, b), 0xC020);
  EXPECT_EQ(cast16(std::numeric_limits<float>::max(), f32, b), 0x7F80);
  EXPECT_EQ(cast16(0x1p-133, f32, b), 0x0001);
  EXPECT_EQ(cast16(-0.0, f32, b), 0x8000);
  EXPECT_TRUE(is_nan16(cast16(kNaN, f32, b), kBFloat16));
  EXPECT_EQ(cast16(1.0 + 0x1p-8 + 0x1p-40, f64, b), 0x3F81);
  EXPECT_EQ(cast16(1e300, f64, b), 0x7F80);
}

// Many values over the whole range, ties and near-ties included, against the search reference.
TEST(Cast, To16BitFloatsMatchReference) {
  std::vector<double> values;
  std::uint64_t s = 7;
  auto next = [&s] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 11;
  };
  for (int i = 0; i < 4000; ++i) {
    const double frac = 1.0 + static_cast<double>(next()) * 0x1p-53;
    const int e = static_cast<int>(next() % 300) - 150;
    values.push_back((next() & 1 ? -1 : 1) * std::ldexp(frac, e));
  }
  for (Format16 f : {kHalf, kBFloat16}) {
    for (std::uint32_t code = 0; code < (((1u << f.exp_bits) - 1) << f.mant_bits); code += 7) {
      const double mid = (decode16(code, f) + decode16(code + 1, f)) / 2;
      values.insert(values.end(), {mid, -mid, mid * (1 + 0x1p-40), mid * (1 - 0x1p-40), mid * (1 + 0x1p-20)});
    }
  }
  for (DType src : {DType::float32, DType::float64}) {
    std::vector<double> in = values;
    if (src == DType::float32)
      for (double& v : in) v = static_cast<double>(static_cast<float>(v));
    const Tensor s = make(in, src);
    for (DType dst : {DType::float16, DType::bfloat16}) {
      SCOPED_TRACE(std::string(seisoku::dtype_name(src)) + " -> " + seisoku::dtype_name(dst));
      const Tensor d = Tensor::empty(s.shape(), dst);
      seisoku::copy(s, d);
      int bad = 0;
      for (std::size_t i = 0; i < in.size() && bad < 5; ++i) {
        const std::uint64_t want = ref_bits(dst, in[i]);
        if (raw_bits(d, static_cast<std::int64_t>(i)) != want) {
          ++bad;
          ADD_FAILURE() << std::hexfloat << in[i] << ": got 0x" << std::hex << raw_bits(d, static_cast<std::int64_t>(i))
                        << ", want 0x" << want;
        }
      }
    }
  }
}

TEST(Cast, FloatToIntTruncatesAndSaturates) {
  const DType f64 = DType::float64;
  EXPECT_EQ(cast_to_int<std::int8_t>(300.7, f64, DType::int8), 127);
  EXPECT_EQ(cast_to_int<std::int8_t>(-300.7, f64, DType::int8), -128);
  EXPECT_EQ(cast_to_int<std::int8_t>(-1.9, f64, DType::int8), -1);
  EXPECT_EQ(cast_to_int<std::int8_t>(1.9, f64, DType::int8), 1);
  EXPECT_EQ(cast_to_int<std::int8_t>(-0.5, f64, DType::int8), 0);
  EXPECT_EQ(cast_to_int<std::int8_t>(127.9, f64, DType::int8), 127);
  EXPECT_EQ(cast_to_int<std::int8_t>(-128.9, f64, DType::int8), -128);
  EXPECT_EQ(cast_to_int<std::int8_t>(kNaN, f64, DType::int8), 0);
  EXPECT_EQ(cast_to_int<std::int8_t>(kInf, f64, DType::int8), 127);
  EXPECT_EQ(cast_to_int<std::int8_t>(-kInf, f64, DType::int8), -128);
  EXPECT_EQ(cast_to_int<std::uint8_t>(-1.9, f64, DType::uint8), 0);
  EXPECT_EQ(cast_to_int<std::uint8_t>(255.9, f64, DType::uint8), 255);
  EXPECT_EQ(cast_to_int<std::uint8_t>(256.0, f64, DType::uint8), 255);
  EXPECT_EQ(cast_to_int<std::uint8_t>(3.99, f64, DType::uint8), 3);
  EXPECT_EQ(cast_to_int<std::int16_t>(40000.0, f64, DType::int16), 32767);
  EXPECT_EQ(cast_to_int<std::int16_t>(-40000.0, f64, DType::int16), -32768);
  EXPECT_EQ(cast_to_int<std::int32_t>(3e9, f64, DType::int32), 2147483647);
  EXPECT_EQ(cast_to_int<std::int32_t>(-3e9, f64, DType::int32), -2147483647 - 1);
  EXPECT_EQ(cast_to_int<std::int32_t>(2147483646.7, f64, DType::int32), 2147483646);
  EXPECT_EQ(cast_to_int<std::int64_t>(1e19, f64, DType::int64), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(cast_to_int<std::int64_t>(-1e19, f64, DType::int64), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(cast_to_int<std::int64_t>(-9.2e18, f64, DType::int64), -9200000000000000000);
  EXPECT_EQ(cast_to_int<std::int8_t>(300.7, DType::float32, DType::int8), 127);
  EXPECT_EQ(cast_to_int<std::int8_t>(-1.9, DType::float32, DType::int8), -1);
  EXPECT_EQ(cast_to_int<std::int8_t>(kNaN, DType::float32, DType::int8), 0);

  std::uint16_t half[3] = {round16(-1.9, kHalf), round16(300.7, kHalf), 0x7E00};
  const Tensor src = Tensor::view(half, {3}, DType::float16);
  const Tensor dst = Tensor::empty({3}, DType::int8);
  seisoku::copy(src, dst);
  EXPECT_EQ(dst.data_as<std::int8_t>()[0], -1);
  EXPECT_EQ(dst.data_as<std::int8_t>()[1], 127);
  EXPECT_EQ(dst.data_as<std::int8_t>()[2], 0);
}

TEST(Cast, IntConversions) {
  std::int32_t i32[4] = {300, -1, 2049, 2051};
  const Tensor src = Tensor::view(i32, {4}, DType::int32);
  const Tensor i8 = Tensor::empty({4}, DType::int8), u8 = Tensor::empty({4}, DType::uint8);
  const Tensor f16 = Tensor::empty({4}, DType::float16), f64 = Tensor::empty({4}, DType::float64);
  seisoku::copy(src, i8);
  seisoku::copy(src, u8);
  seisoku::copy(src, f16);
  seisoku::copy(src, f64);
  EXPECT_EQ(i8.data_as<std::int8_t>()[0], 44);
  EXPECT_EQ(i8.data_as<std::int8_t>()[1], -1);
  EXPECT_EQ(u8.data_as<std::uint8_t>()[1], 255);
  EXPECT_EQ(raw_bits(f16, 2), round16(2048.0, kHalf));
  EXPECT_EQ(raw_bits(f16, 3), round16(2052.0, kHalf));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(f64.data_as<double>()[i], static_cast<double>(i32[i]));

  std::int64_t i64[2] = {(std::int64_t{1} << 24) + 1, -(std::int64_t{1} << 40) - 3};
  const Tensor f32 = Tensor::empty({2}, DType::float32);
  seisoku::copy(Tensor::view(i64, {2}, DType::int64), f32);
  EXPECT_EQ(f32.data_as<float>()[0], 16777216.0f);
  EXPECT_EQ(f32.data_as<float>()[1], static_cast<float>(-(std::int64_t{1} << 40)));
}

// int64 -> bfloat16 rounds once, also above 2^53.
TEST(Cast, Int64ToBFloat16RoundsOnce) {
  std::int64_t v = (std::int64_t{1} << 62) + (std::int64_t{1} << 54) + 1;
  std::uint16_t out = 0;
  seisoku::copy(Tensor::view(&v, {1}, DType::int64), Tensor::view(&out, {1}, DType::bfloat16));
  EXPECT_EQ(out, 0x5E81);
}

// ---- reductions ----

class Reduce : public ::testing::TestWithParam<std::tuple<DType, std::int64_t>> {};

TEST_P(Reduce, MatchesLoops) {
  const auto [dtype, n] = GetParam();
  const double u = unit_roundoff(dtype);
  const Tensor x = make(test_values(n, 3), dtype);
  const std::vector<double> v = read(x);
  double sum = 0, abs_sum = 0, sq_sum = 0, mx = -kInf, amax = 0, nnz = 0;
  for (double e : v) {
    sum += e;
    abs_sum += std::fabs(e);
    sq_sum += e * e;
    mx = std::max(mx, e);
    amax = std::max(amax, std::fabs(e));
    nnz += e != 0;
  }
  const Tensor out = Tensor::empty({1}, dtype);
  const double acc = 1e-12;
  const double sum_tol = u * std::fabs(sum) + acc * abs_sum;

  seisoku::sum(x, out);
  EXPECT_NEAR(read1(out), sum, sum_tol);
  seisoku::mean(x, out);
  EXPECT_NEAR(read1(out), sum / n, sum_tol / n);
  seisoku::max(x, out);
  EXPECT_EQ(read1(out), mx);
  seisoku::norm(x, 0, out);
  EXPECT_EQ(read1(out), nnz);
  seisoku::norm(x, 1, out);
  EXPECT_NEAR(read1(out), abs_sum, (2 * u + acc) * abs_sum);
  seisoku::norm(x, 2, out);
  EXPECT_NEAR(read1(out), std::sqrt(sq_sum), (2 * u + acc) * std::sqrt(sq_sum));
  seisoku::norm(x, kInf, out);
  EXPECT_EQ(read1(out), amax);
}

INSTANTIATE_TEST_SUITE_P(Sizes, Reduce,
                         ::testing::Combine(::testing::Values(DType::float32, DType::float64),
                                            ::testing::Values<std::int64_t>(1, 7, 8192, 8193, 100003)),
                         param_name<::testing::TestParamInfo<Reduce::ParamType>>);

class RowNorm : public ::testing::TestWithParam<std::tuple<DType, Shape>> {};

TEST_P(RowNorm, MatchesLoops) {
  const auto& [dtype, shape] = GetParam();
  const double u = unit_roundoff(dtype);
  const Tensor x = make(test_values(seisoku::shape_numel(shape), 4), dtype, shape);
  const std::vector<double> v = read(x);
  const std::int64_t rows = shape[0], cols = rows ? x.numel() / rows : 0;
  const Tensor out = Tensor::empty({rows}, dtype);
  for (double ord : {0.0, 1.0, 2.0, kInf}) {
    SCOPED_TRACE(ord);
    seisoku::row_norm(x, ord, out);
    const std::vector<double> got = read(out);
    for (std::int64_t r = 0; r < rows; ++r) {
      double acc = 0;
      for (std::int64_t c = 0; c < cols; ++c) {
        const double e = v[r * cols + c];
        if (ord == 0) acc += e != 0;
        else if (ord == 1) acc += std::fabs(e);
        else if (ord == 2) acc += e * e;
        else acc = std::max(acc, std::fabs(e));
      }
      if (ord == 2) acc = std::sqrt(acc);
      ASSERT_NEAR(got[r], acc, (2 * u + 1e-12) * acc) << "row " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RowNorm,
                         ::testing::Combine(::testing::Values(DType::float32, DType::float64),
                                            ::testing::Values(Shape{37, 3, 5}, Shape{5, 20000}, Shape{1, 7},
                                                              Shape{3, 0}, Shape{0, 4}, Shape{9})),
                         param_name<::testing::TestParamInfo<RowNorm::ParamType>>);

TEST(ReduceNaN, MaxAndInfNormPropagateNaN) {
  for (DType dtype : {DType::float32, DType::float64}) {
    for (std::int64_t n : {std::int64_t{5}, std::int64_t{100003}}) {
      for (std::int64_t pos : {std::int64_t{0}, std::int64_t{3}, n / 2, n - 1}) {
        SCOPED_TRACE(std::to_string(n) + " " + std::to_string(pos));
        std::vector<double> v = test_values(n, 5);
        v[static_cast<std::size_t>(pos)] = kNaN;
        const Tensor x = make(v, dtype), out = Tensor::empty({1}, dtype);
        seisoku::max(x, out);
        EXPECT_TRUE(std::isnan(read1(out)));
        seisoku::norm(x, kInf, out);
        EXPECT_TRUE(std::isnan(read1(out)));
      }
    }
  }
}

TEST(ReduceErrors, EmptyAndBadArguments) {
  const Tensor empty = Tensor::empty({0}, DType::float32), out = Tensor::empty({1}, DType::float32);
  seisoku::fill(out, 5.0);
  seisoku::sum(empty, out);
  EXPECT_EQ(read1(out), 0.0);
  seisoku::norm(empty, 2, out);
  EXPECT_EQ(read1(out), 0.0);
  expect_invalid([&] { seisoku::mean(empty, out); }, "[mean]");
  expect_invalid([&] { seisoku::max(empty, out); }, "[max]");

  const Tensor x = Tensor::zeros({4, 3}, DType::float32);
  expect_invalid([&] { seisoku::sum(x, Tensor::empty({2}, DType::float32)); }, "[sum]");
  expect_invalid([&] { seisoku::sum(x, Tensor::empty({1}, DType::float64)); }, "[sum]");
  expect_invalid([&] { seisoku::sum(Tensor::zeros({4}, DType::int32), Tensor::empty({1}, DType::int32)); }, "[sum]");
  expect_invalid([&] { seisoku::norm(x, 3, out); }, "[norm]");
  expect_invalid([&] { seisoku::norm(x, -kInf, out); }, "[norm]");
  expect_invalid([&] { seisoku::row_norm(x, 2, Tensor::empty({3}, DType::float32)); }, "[row_norm]");
  expect_invalid([&] { seisoku::row_norm(Tensor::zeros({}, DType::float32), 2, out); }, "[row_norm]");
}

// ---- gemm ----

struct GemmRef {
  std::vector<double> c;    // alpha * op(a) op(b) + beta * c0
  std::vector<double> mag;  // |alpha| * |op(a)| |op(b)| + |beta c0|, for the error bound
};

GemmRef gemm_ref(const std::vector<double>& a, const std::vector<double>& b, const std::vector<double>& c0,
                 std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb, double alpha, double beta) {
  GemmRef r{std::vector<double>(m * n), std::vector<double>(m * n)};
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0, mag = 0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double x = ta ? a[p * m + i] : a[i * k + p];
        const double y = tb ? b[j * k + p] : b[p * n + j];
        acc += x * y;
        mag += std::fabs(x * y);
      }
      const double old = beta == 0 ? 0.0 : beta * c0[i * n + j];
      r.c[i * n + j] = alpha * acc + old;
      r.mag[i * n + j] = std::fabs(alpha) * mag + std::fabs(old);
    }
  }
  return r;
}

class Gemm : public ::testing::TestWithParam<std::tuple<DType, bool, bool>> {};

TEST_P(Gemm, MatchesTripleLoop) {
  const auto [dtype, ta, tb] = GetParam();
  const double u = unit_roundoff(dtype);
  const std::int64_t m = 37, n = 19, k = 53;
  const Tensor a = make(test_values(m * k, 6), dtype, ta ? Shape{k, m} : Shape{m, k});
  const Tensor b = make(test_values(k * n, 7), dtype, tb ? Shape{n, k} : Shape{k, n});
  const std::vector<double> av = read(a), bv = read(b), c0 = read(make(test_values(m * n, 8), dtype, {m, n}));

  for (const auto& [alpha, beta] : {std::pair{1.0, 0.0}, std::pair{0.75, -1.25}, std::pair{-2.0, 1.0}}) {
    SCOPED_TRACE(std::to_string(alpha) + " " + std::to_string(beta));
    const Tensor out = make(c0, dtype, {m, n});
    seisoku::gemm(a, b, out, ta, tb, alpha, beta);
    const GemmRef ref = gemm_ref(av, bv, c0, m, n, k, ta, tb, alpha, beta);
    const std::vector<double> got = read(out);
    for (std::int64_t i = 0; i < m * n; ++i) ASSERT_NEAR(got[i], ref.c[i], 2 * (k + 2) * u * ref.mag[i]) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Transposes, Gemm,
                         ::testing::Combine(::testing::Values(DType::float32, DType::float64), ::testing::Bool(),
                                            ::testing::Bool()),
                         param_name<::testing::TestParamInfo<Gemm::ParamType>>);

TEST(GemmEdges, BetaZeroIgnoresNaNAndEmptyInner) {
  const std::int64_t m = 5, n = 3, k = 4;
  const Tensor a = make(test_values(m * k, 9), DType::float64, {m, k});
  const Tensor b = make(test_values(k * n, 10), DType::float64, {k, n});
  const Tensor c = Tensor::empty({m, n}, DType::float64);
  seisoku::fill(c, kNaN);
  seisoku::gemm(a, b, c, false, false, 2.0, 0.0);
  const GemmRef ref = gemm_ref(read(a), read(b), read(c), m, n, k, false, false, 2.0, 0.0);
  const std::vector<double> got = read(c);
  for (std::int64_t i = 0; i < m * n; ++i) ASSERT_NEAR(got[i], ref.c[i], 1e-14) << i;

  const Tensor a0 = Tensor::empty({m, 0}, DType::float32), b0 = Tensor::empty({0, n}, DType::float32);
  const Tensor c1 = make(test_values(m * n, 11), DType::float32, {m, n});
  const std::vector<double> before = read(c1);
  seisoku::gemm(a0, b0, c1, false, false, 1.0, 0.5);
  const std::vector<double> scaled = read(c1);
  for (std::int64_t i = 0; i < m * n; ++i) EXPECT_EQ(scaled[i], 0.5 * before[i]);
  seisoku::fill(c1, kNaN);
  seisoku::gemm(a0, b0, c1, false, false, 1.0, 0.0);
  for (double e : read(c1)) EXPECT_EQ(e, 0.0);

  const Tensor none = Tensor::empty({0, n}, DType::float32);
  seisoku::gemm(Tensor::empty({0, k}, DType::float32), Tensor::empty({k, n}, DType::float32), none);
}

TEST(GemmErrors, ThrowWithOpName) {
  const Tensor a = Tensor::zeros({3, 4}, DType::float32), b = Tensor::zeros({4, 2}, DType::float32);
  const Tensor c = Tensor::zeros({3, 2}, DType::float32);
  expect_invalid([&] { seisoku::gemm(a, Tensor::zeros({5, 2}, DType::float32), c); }, "[gemm]");
  expect_invalid([&] { seisoku::gemm(a, b, Tensor::zeros({3, 3}, DType::float32)); }, "[gemm]");
  expect_invalid([&] { seisoku::gemm(a, b, c, true, false); }, "[gemm]");
  expect_invalid([&] { seisoku::gemm(a, Tensor::zeros({4, 2}, DType::float64), c); }, "[gemm]");
  expect_invalid([&] { seisoku::gemm(a, b, Tensor::zeros({3, 2}, DType::float64)); }, "[gemm]");
  expect_invalid([&] { seisoku::gemm(Tensor::zeros({12}, DType::float32), b, c); }, "[gemm]");
  expect_invalid([&] { seisoku::gemm(a, Tensor::zeros({1, 4, 2}, DType::float32), c); }, "[gemm]");
  expect_invalid([&] { seisoku::gemm(Tensor::zeros({3, 4}, DType::int32), Tensor::zeros({4, 2}, DType::int32),
                                     Tensor::zeros({3, 2}, DType::int32)); },
                 "[gemm]");
  expect_invalid([&] { seisoku::gemm(a, b, c, false, false, kNaN, 0.0); }, "[gemm]");
}

// ---- losses (seisoku/loss.hpp) ----

Tensor class_indices(const std::vector<std::int64_t>& v, DType dtype) {
  Tensor t = Tensor::empty({static_cast<std::int64_t>(v.size())}, dtype);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::int64) t.data_as<std::int64_t>()[i] = v[i];
    else t.data_as<std::int32_t>()[i] = static_cast<std::int32_t>(v[i]);
  }
  return t;
}

// log softmax(x / temperature) of row r of an (n, k) row-major matrix.
std::vector<double> log_softmax_row(const std::vector<double>& x, std::int64_t r, std::int64_t k, double temp = 1) {
  std::vector<double> z(x.begin() + r * k, x.begin() + (r + 1) * k);
  double m = -kInf, s = 0.0;
  for (double& v : z) m = std::max(m, v /= temp);
  for (double v : z) s += std::exp(v - m);
  for (double& v : z) v -= m + std::log(s);
  return z;
}

TEST(CrossEntropy, ConventionsMatchTheirTargets) {
  const std::int64_t n = 6, k = 4;
  const Tensor x = make(test_values(n * k, 21), DType::float64, {n, k});
  const std::vector<std::int64_t> y = {0, 3, 1, 2, 3, 0};
  const Tensor t = class_indices(y, DType::int32);
  for (const auto conv : {seisoku::SmoothingConvention::lecture, seisoku::SmoothingConvention::uniform}) {
    for (const double eps : {0.0, 0.2}) {
      const double q_off = conv == seisoku::SmoothingConvention::lecture ? eps / (k - 1) : eps / k;
      const double q_on = conv == seisoku::SmoothingConvention::lecture ? 1 - eps : 1 - eps + eps / k;
      const Tensor loss = Tensor::empty({1}, DType::float64), grad = Tensor::empty({n, k}, DType::float64);
      const Tensor ps = Tensor::empty({n}, DType::float64);
      seisoku::cross_entropy(x, t, Tensor{}, loss, grad, ps, eps, conv);
      double mean = 0.0;
      for (std::int64_t r = 0; r < n; ++r) {
        const std::vector<double> lp = log_softmax_row(read(x), r, k);
        double l = 0.0;
        for (std::int64_t j = 0; j < k; ++j) {
          const double q = j == y[r] ? q_on : q_off;
          l -= q * lp[j];
          EXPECT_NEAR(read(grad)[r * k + j], (std::exp(lp[j]) - q) / n, 1e-15);
        }
        EXPECT_NEAR(read(ps)[r], l, 1e-14);
        mean += l / n;
      }
      EXPECT_NEAR(read1(loss), mean, 1e-14);
      if (conv == seisoku::SmoothingConvention::lecture) {  // the default convention
        const Tensor again = Tensor::empty({1}, DType::float64);
        seisoku::cross_entropy(x, t, Tensor{}, again, Tensor{}, Tensor{}, eps);
        EXPECT_EQ(read1(again), read1(loss));
      }
    }
  }
}

TEST(CrossEntropy, BadTargetNamesTheFirstRowAndWritesNothing) {
  const Tensor x = make(test_values(4 * 5, 22), DType::float32, {4, 5});
  for (const DType dtype : {DType::int32, DType::int64}) {
    const Tensor loss = make({42.0}, DType::float32), grad = Tensor::empty({4, 5}, DType::float32);
    seisoku::fill(grad, 42.0);
    const Tensor t = class_indices({1, 7, 2, -1}, dtype);
    expect_invalid([&] { seisoku::cross_entropy(x, t, Tensor{}, loss, grad); },
                   "[cross_entropy] argument 'target' must hold class indices in [0, 5), got target[1] = 7");
    EXPECT_EQ(read1(loss), 42.0);
    for (double v : read(grad)) ASSERT_EQ(v, 42.0);
    expect_invalid([&] { seisoku::cross_entropy(x, class_indices({1, 0, 2, -1}, dtype), Tensor{}, loss); },
                   "got target[3] = -1");
  }
}

TEST(CrossEntropy, BadTargetOnCudaGivesTheCpuError) {
  if (!seisoku::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const Tensor x = make(test_values(300 * 40, 23), DType::float32, {300, 40});
  std::vector<std::int64_t> y(300, 3);
  y[299] = 40, y[120] = -2, y[200] = 41;
  const auto message = [&](Device device) {
    const Tensor loss = Tensor::empty({1}, DType::float32, device), grad = Tensor::empty({300, 40}, x.dtype(), device);
    const Tensor t = class_indices(y, DType::int64);
    try {
      seisoku::cross_entropy(device == Device::cuda ? x.to(device) : x, device == Device::cuda ? t.to(device) : t,
                             Tensor{}, loss, grad);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(Device::cpu).find("got target[120] = -2"), std::string::npos) << message(Device::cpu);
  EXPECT_EQ(message(Device::cuda), message(Device::cpu));
}

TEST(SmoothingConvention, NamesParseAndOthersAreRejected) {
  EXPECT_EQ(seisoku::smoothing_convention_from_name("op", "lecture"), seisoku::SmoothingConvention::lecture);
  EXPECT_EQ(seisoku::smoothing_convention_from_name("op", "uniform"), seisoku::SmoothingConvention::uniform);
  for (const char* name : {"seed", "torch", "Uniform", ""})
    expect_invalid([&] { seisoku::smoothing_convention_from_name("op", name); },
                   std::string("[op] argument 'convention' must be 'lecture' or 'uniform', got '") + name + "'");
}

TEST(Losses, MseBceAndKlMatchTheirFormulas) {
  const std::int64_t n = 5, k = 3;
  const Tensor x = make(test_values(n * k, 24), DType::float64, {n, k});
  const Tensor t = make(test_values(n * k, 25), DType::float64, {n, k});
  std::vector<double> p = read(t);
  for (double& v : p) v = (v + 1) / 2;  // BCE targets in [0, 1]
  const Tensor pt = make(p, DType::float64, {n, k});
  const Tensor w = make({0.5, 2.0, 0.0, 1.0, 3.0}, DType::float64);
  const double wsum = 6.5, temp = 2.0;
  const Tensor loss = Tensor::empty({1}, DType::float64), grad = Tensor::empty({n, k}, DType::float64);
  for (const std::string op : {"mse_loss", "bce_with_logits", "kl_div_softened"}) {
    if (op == "mse_loss") seisoku::mse_loss(x, t, w, loss, grad);
    else if (op == "bce_with_logits") seisoku::bce_with_logits(x, pt, w, loss, grad);
    else seisoku::kl_div_softened(x, t, temp, w, loss, grad);
    double ref = 0.0;
    for (std::int64_t r = 0; r < n; ++r) {
      const double wr = read(w)[r] / wsum;
      const std::vector<double> ls = log_softmax_row(read(x), r, k, temp), lt = log_softmax_row(read(t), r, k, temp);
      for (std::int64_t j = 0; j < k; ++j) {
        const double a = read(x)[r * k + j], b = read(t)[r * k + j], q = p[r * k + j];
        double l = std::exp(lt[j]) * (lt[j] - ls[j]) * temp * temp, g = temp * (std::exp(ls[j]) - std::exp(lt[j]));
        if (op == "mse_loss") l = (a - b) * (a - b) / k, g = 2 * (a - b) / k;
        if (op == "bce_with_logits") l = (std::log1p(std::exp(a)) - a * q) / k, g = (1 / (1 + std::exp(-a)) - q) / k;
        ref += wr * l;
        EXPECT_NEAR(read(grad)[r * k + j], wr * g, 1e-15) << op << " " << r << " " << j;
      }
    }
    EXPECT_NEAR(read1(loss), ref, 1e-14) << op;
  }
}

TEST(LossErrors, ArgumentsAndOutputsAreChecked) {
  const Tensor x = make(test_values(4 * 5, 26), DType::float64, {4, 5}), x2 = Tensor::zeros({4, 5}, DType::float64);
  const Tensor y = class_indices({0, 1, 2, 3}, DType::int64), loss = Tensor::empty({1}, DType::float64);
  const Tensor grad = Tensor::empty({4, 5}, DType::float64);
  const auto ce = [&](const Tensor& l, const Tensor& g, const Tensor& ps, double eps = 0.0) {
    seisoku::cross_entropy(x, y, Tensor{}, l, g, ps, eps);
  };
  expect_invalid([&] { ce(Tensor::empty({2}, DType::float64), grad, Tensor{}); }, "[cross_entropy]");
  expect_invalid([&] { ce(loss, Tensor::empty({5, 4}, DType::float64), Tensor{}); }, "[cross_entropy]");
  expect_invalid([&] { ce(loss, Tensor::empty({4, 5}, DType::float32), Tensor{}); }, "[cross_entropy]");
  expect_invalid([&] { ce(loss, grad, Tensor::empty({5}, DType::float64)); }, "[cross_entropy]");
  expect_invalid([&] { ce(loss, x, Tensor{}); }, "grad and logits must not overlap");
  const Tensor ps = Tensor::empty({4}, DType::float64);
  expect_invalid([&] { ce(Tensor::view(ps.data(), {1}, DType::float64), grad, ps); },
                 "loss and per_sample must not overlap");
  expect_invalid([&] { ce(loss, grad, Tensor{}, 1.0); }, "argument 'label_smoothing' must be in [0, 1), got 1");
  expect_invalid([&] { ce(loss, grad, Tensor{}, kNaN); }, "label_smoothing");
  const Tensor one_class = Tensor::zeros({4, 1}, DType::float64), zeros = class_indices({0, 0, 0, 0}, DType::int64);
  expect_invalid([&] { seisoku::cross_entropy(one_class, zeros, Tensor{}, loss, Tensor{}, Tensor{}, 0.1); },
                 "K >= 2");
  expect_invalid([&] { seisoku::mse_loss(x, x2, Tensor{}, loss, x2); }, "[mse_loss] grad and target must not overlap");
  expect_invalid([&] { seisoku::mse_loss(x, x2.reshape({20}), Tensor{}, loss); }, "[mse_loss]");
  expect_invalid([&] { seisoku::bce_with_logits(x, make(std::vector<double>(20, 1.5), DType::float64, {4, 5}),
                                                Tensor{}, loss); },
                 "[bce_with_logits] argument 'target' must be in [0, 1]");
  expect_invalid([&] { seisoku::kl_div_softened(x, x2, 0.0, Tensor{}, loss); }, "argument 'temperature'");
}

}  // namespace
