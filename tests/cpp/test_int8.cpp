// int8 from C++: the int32 product of every CPU kernel this machine runs against a plain loop,
// the fused epilogue, QuantizedLinear beside its float Linear, FakeQuantize's straight-through
// gradient, and the argument errors.
#include <gtest/gtest.h>
#include <seisoku/int8.hpp>
#include <seisoku/nn/quantized.hpp>
#include <seisoku/seisoku.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using seisoku::DType;
using seisoku::Int8Weight;
using seisoku::Tensor;
namespace nn = seisoku::nn;

// Deterministic codes in [-127, 127].
Tensor codes_of(std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
  Tensor t = Tensor::empty({rows, cols}, DType::int8);
  std::uint32_t s = seed * 2654435761u + 1;
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    s = s * 1664525u + 1013904223u;
    t.data_as<std::int8_t>()[i] = static_cast<std::int8_t>(static_cast<int>((s >> 8) % 255) - 127);
  }
  return t;
}

Tensor ones_scale() {
  Tensor s = Tensor::empty({1}, DType::float32);
  *s.data_as<float>() = 1.0f;
  return s;
}

class Int8Kernels : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!seisoku::int8_kernel_supported(GetParam())) GTEST_SKIP() << "this CPU cannot run " << GetParam();
    previous_ = seisoku::int8_kernel();
    seisoku::set_int8_kernel(GetParam());
  }
  void TearDown() override {
    if (!previous_.empty()) seisoku::set_int8_kernel(previous_);
  }
  std::string previous_;
};

TEST_P(Int8Kernels, ProductIsExact) {
  const std::int64_t shapes[][3] = {{1, 784, 800}, {5, 13, 33}, {8, 64, 16}, {3, 3, 1}};
  for (const auto& sh : shapes) {
    const std::int64_t n = sh[0], k = sh[1], o = sh[2];
    const Tensor xq = codes_of(n, k, 1), wq = codes_of(o, k, 2);
    const Int8Weight w = Int8Weight::from_codes(wq, ones_scale());
    Tensor acc = Tensor::empty({n, o}, DType::int32);
    seisoku::int8_matmul(xq, w, acc);
    for (std::int64_t r = 0; r < n; ++r)
      for (std::int64_t c = 0; c < o; ++c) {
        std::int64_t s = 0;
        for (std::int64_t i = 0; i < k; ++i)
          s += std::int64_t{xq.data_as<std::int8_t>()[r * k + i]} * wq.data_as<std::int8_t>()[c * k + i];
        ASSERT_EQ(acc.data_as<std::int32_t>()[r * o + c], s) << "row " << r << " col " << c << " k " << k;
      }
  }
}

TEST_P(Int8Kernels, EpilogueIsTheDocumentedFormula) {
  const std::int64_t n = 6, k = 41, o = 19;
  const Tensor xq = codes_of(n, k, 3), wq = codes_of(o, k, 4);
  Tensor scales = Tensor::empty({o}, DType::float32), bias = Tensor::empty({o}, DType::float32);
  for (std::int64_t i = 0; i < o; ++i) {
    scales.data_as<float>()[i] = 0.001f * static_cast<float>(i + 1);
    bias.data_as<float>()[i] = 0.5f - 0.05f * static_cast<float>(i);
  }
  const Int8Weight w = Int8Weight::from_codes(wq, scales);
  Tensor y = Tensor::empty({n, o}, DType::float32), acc = Tensor::empty({n, o}, DType::int32);
  seisoku::Int8Epilogue e;
  e.activation = seisoku::Activation::relu;
  seisoku::int8_linear(xq, 0.02, w, bias, y, e);
  seisoku::int8_matmul(xq, w, acc);
  for (std::int64_t i = 0; i < n * o; ++i) {
    const std::int64_t c = i % o;
    const float m = 0.02f * scales.data_as<float>()[c];
    const float p = static_cast<float>(acc.data_as<std::int32_t>()[i]) * m;
    const float z = p + bias.data_as<float>()[c];
    EXPECT_EQ(y.data_as<float>()[i], z > 0 ? z : 0.0f) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, Int8Kernels, ::testing::Values("scalar", "avx2", "avx512_vnni"));

TEST(Int8Layers, QuantizedLinearIsCloseToItsLinear) {
  auto gen = std::make_shared<seisoku::Generator>(5);
  nn::LinearOptions lo;
  lo.activation = seisoku::Activation::relu;
  nn::Linear linear(50, 30, lo, gen);
  Tensor x = Tensor::empty({8, 50}, DType::float32);
  seisoku::normal(x, 9, 0, 0.0, 1.0);
  const Tensor f = linear.forward(x);
  std::vector<float> expected(f.data_as<float>(), f.data_as<float>() + f.numel());
  auto q = nn::QuantizedLinear::from_linear(linear, true);
  const Tensor y = q->forward(x);
  double worst = 0, top = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(y.data_as<float>()[i]) - expected[i]));
    top = std::max(top, std::fabs(static_cast<double>(expected[i])));
  }
  EXPECT_LT(worst, 0.03 * top);
  EXPECT_GT(q->last_input_scale(), 0.0);
  EXPECT_THROW(q->backward(y), std::invalid_argument);
  EXPECT_LT(q->nbytes(), 50 * 30 * 4 / 3);
}

TEST(Int8Layers, FakeQuantizeStraightThrough) {
  nn::FakeQuantize fq(0.1, /*scale=*/0.5);
  Tensor x = Tensor::empty({1, 4}, DType::float32);
  const float xs[] = {0.26f, -10.0f, 70.0f, -63.4f};  // 70 / 0.5 = 140 is clipped
  for (int i = 0; i < 4; ++i) x.data_as<float>()[i] = xs[i];
  const Tensor y = fq.forward(x);
  EXPECT_EQ(y.data_as<float>()[0], 0.5f);
  EXPECT_EQ(y.data_as<float>()[1], -10.0f);
  EXPECT_EQ(y.data_as<float>()[2], 63.5f);
  EXPECT_EQ(y.data_as<float>()[3], -63.5f);
  Tensor g = Tensor::empty({1, 4}, DType::float32);
  for (int i = 0; i < 4; ++i) g.data_as<float>()[i] = 1.0f;
  const Tensor gx = fq.backward(g);
  EXPECT_EQ(gx.data_as<float>()[0], 1.0f);
  EXPECT_EQ(gx.data_as<float>()[2], 0.0f);
  EXPECT_EQ(gx.data_as<float>()[3], 1.0f);
}

TEST(Int8Errors, BadArgumentsThrowInvalidArgument) {
  const Int8Weight w = Int8Weight::from_codes(codes_of(4, 6, 1), ones_scale());
  Tensor y = Tensor::empty({2, 4}, DType::float32);
  EXPECT_THROW(seisoku::int8_linear(codes_of(2, 5, 1), 1.0, w, Tensor(), y), std::invalid_argument);
  EXPECT_THROW(seisoku::int8_linear(codes_of(2, 6, 1), -1.0, w, Tensor(), y), std::invalid_argument);
  EXPECT_THROW(seisoku::set_int8_kernel("mmx"), std::invalid_argument);
  EXPECT_THROW(Int8Weight::quantize(Tensor::empty({3}, DType::float32), true), std::invalid_argument);
  nn::QuantizedOptions bad;
  bad.activation = seisoku::Activation::tanh;
  EXPECT_THROW(nn::QuantizedLinear(w, Tensor(), bad), std::invalid_argument);
}

}  // namespace
