// Sparse linear products from C++: the CSR pattern and its transpose, the forward and the
// backward against plain loops over the dense weight (few samples and whole batches), the
// SparseLinear layer built from a pruned Linear, and the argument errors.
#include <gtest/gtest.h>
#include <seisoku/nn/sparse_linear.hpp>
#include <seisoku/seisoku.hpp>
#include <seisoku/sparse_linear.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

namespace {

using seisoku::DType;
using seisoku::Tensor;

constexpr std::int64_t kRows = 13, kCols = 21;

// A weight with about `keep` of its entries nonzero (row 4 empty), as doubles.
Tensor pruned(double keep, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0), p(0.0, 1.0);
  Tensor w = Tensor::zeros({kRows, kCols}, DType::float64);
  for (std::int64_t i = 0; i < kRows * kCols; ++i)
    if (i / kCols != 4 && p(gen) < keep) w.data_as<double>()[i] = u(gen);
  return w;
}

Tensor random(std::int64_t n, std::int64_t m, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> d;
  Tensor t = Tensor::empty({n, m}, DType::float64);
  for (std::int64_t i = 0; i < n * m; ++i) t.data_as<double>()[i] = d(gen);
  return t;
}

double at(const Tensor& t, std::int64_t i, std::int64_t j) { return t.data_as<double>()[i * t.shape()[1] + j]; }

TEST(SparseLinear, PatternAndTransposeOfADenseWeight) {
  const Tensor w = pruned(0.3, 1);
  Tensor values;
  const seisoku::SparsePattern p = seisoku::sparse_from_dense(w, &values);
  const auto* rp = p.row_ptr.data_as<std::int64_t>();
  const auto* ci = p.col_idx.data_as<std::int32_t>();
  std::int64_t nnz = 0;
  for (std::int64_t r = 0; r < kRows; ++r) {
    ASSERT_EQ(rp[r], nnz);
    for (std::int64_t c = 0; c < kCols; ++c)
      if (at(w, r, c) != 0.0) {
        EXPECT_EQ(ci[nnz], c);
        EXPECT_EQ(values.data_as<double>()[nnz], at(w, r, c));
        ++nnz;
      }
  }
  EXPECT_EQ(rp[4], rp[5]);  // the empty row
  ASSERT_EQ(p.nnz(), nnz);
  const auto* tp = p.t_ptr.data_as<std::int64_t>();
  const auto* tr = p.t_row_idx.data_as<std::int32_t>();
  const auto* ts = p.t_pos.data_as<std::int32_t>();
  for (std::int64_t c = 0; c < kCols; ++c)
    for (std::int64_t e = tp[c]; e < tp[c + 1]; ++e) {
      EXPECT_EQ(ci[ts[e]], c);
      EXPECT_EQ(values.data_as<double>()[ts[e]], at(w, tr[e], c));
      if (e > tp[c]) EXPECT_LT(tr[e - 1], tr[e]);
    }
}

TEST(SparseLinear, ForwardAndBackwardMatchPlainLoops) {
  const Tensor w = pruned(0.25, 2);
  Tensor values;
  const seisoku::SparsePattern p = seisoku::sparse_from_dense(w, &values);
  Tensor bias = Tensor::empty({kRows}, DType::float64);
  for (std::int64_t r = 0; r < kRows; ++r) bias.data_as<double>()[r] = 0.1 * static_cast<double>(r) - 0.5;
  for (std::int64_t n : {1, 3, 4, 9, 40}) {
    const Tensor x = random(n, kCols, 3), g = random(n, kRows, 4);
    Tensor y = Tensor::empty({n, kRows}, DType::float64);
    seisoku::Epilogue e;
    e.activation = seisoku::Activation::relu;
    seisoku::sparse_linear(x, p, values, bias, y, e);
    Tensor gx = Tensor::empty({n, kCols}, DType::float64), gv = Tensor::empty({p.nnz()}, DType::float64);
    Tensor gb = Tensor::empty({kRows}, DType::float64);
    seisoku::sparse_linear_backward(g, x, p, values, gx, gv, gb, false);
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t r = 0; r < kRows; ++r) {
        double z = bias.data_as<double>()[r];
        for (std::int64_t c = 0; c < kCols; ++c) z += at(x, b, c) * at(w, r, c);
        EXPECT_NEAR(at(y, b, r), std::max(z, 0.0), 1e-12) << "n " << n;
      }
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t c = 0; c < kCols; ++c) {
        double s = 0;
        for (std::int64_t r = 0; r < kRows; ++r) s += at(g, b, r) * at(w, r, c);
        EXPECT_NEAR(at(gx, b, c), s, 1e-12) << "n " << n;
      }
    const auto* rp = p.row_ptr.data_as<std::int64_t>();
    const auto* ci = p.col_idx.data_as<std::int32_t>();
    for (std::int64_t r = 0; r < kRows; ++r) {
      double sb = 0;
      for (std::int64_t b = 0; b < n; ++b) sb += at(g, b, r);
      EXPECT_NEAR(gb.data_as<double>()[r], sb, 1e-12);
      for (std::int64_t k = rp[r]; k < rp[r + 1]; ++k) {
        double s = 0;
        for (std::int64_t b = 0; b < n; ++b) s += at(g, b, r) * at(x, b, ci[k]);
        EXPECT_NEAR(gv.data_as<double>()[k], s, 1e-12) << "n " << n;
      }
    }
  }
}

TEST(SparseLinear, LayerFromAPrunedLinearComputesTheSameOutputs) {
  seisoku::nn::LinearOptions o;
  o.dtype = DType::float64;
  o.activation = seisoku::Activation::tanh;
  auto dense = std::make_shared<seisoku::nn::Linear>(kCols, kRows, o);
  Tensor w = dense->weight()->value();
  const Tensor mask = pruned(0.2, 5);
  for (std::int64_t i = 0; i < w.numel(); ++i)
    if (mask.data_as<double>()[i] == 0.0) w.data_as<double>()[i] = 0.0;
  auto sparse = seisoku::nn::SparseLinear::from_linear(*dense);
  EXPECT_EQ(sparse->in_features(), kCols);
  EXPECT_EQ(sparse->out_features(), kRows);
  const Tensor x = random(6, kCols, 6);
  const Tensor yd = dense->forward(x), ys = sparse->forward(x);
  for (std::int64_t i = 0; i < yd.numel(); ++i) EXPECT_NEAR(ys.data_as<double>()[i], yd.data_as<double>()[i], 1e-12);
  const Tensor back = sparse->to_linear()->weight()->value();
  for (std::int64_t i = 0; i < w.numel(); ++i) EXPECT_EQ(back.data_as<double>()[i], w.data_as<double>()[i]);
}

TEST(SparseLinear, BadArgumentsThrowInvalidArgument) {
  Tensor rp = Tensor::zeros({3}, DType::int64), ci = Tensor::zeros({0}, DType::int32);
  EXPECT_THROW(seisoku::sparse_pattern(rp, ci, 3, 4), std::invalid_argument);  // wrong row_ptr length
  rp = Tensor::zeros({3}, DType::int64);
  rp.data_as<std::int64_t>()[2] = 1;
  ci = Tensor::zeros({1}, DType::int32);
  ci.data_as<std::int32_t>()[0] = 9;
  EXPECT_THROW(seisoku::sparse_pattern(rp, ci, 2, 4), std::invalid_argument);  // column out of range
  Tensor w = Tensor::zeros({2, 2}, DType::float32);
  w.data_as<float>()[3] = std::nanf("");
  EXPECT_THROW(seisoku::sparse_from_dense(w, nullptr), std::invalid_argument);
  Tensor values;
  w.data_as<float>()[3] = 1.0f;
  const seisoku::SparsePattern p = seisoku::sparse_from_dense(w, &values);
  Tensor x = Tensor::zeros({3, 5}, DType::float32), y = Tensor::empty({3, 2}, DType::float32);
  EXPECT_THROW(seisoku::sparse_linear(x, p, values, Tensor(), y), std::invalid_argument);  // 5 features, not 2
}

}  // namespace
