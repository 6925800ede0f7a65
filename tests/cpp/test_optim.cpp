// Fused optimizer steps from C++: rules against plain loops, penalties, max-norm, non-finite
// gradients, bad hyper-parameters, and a linear regression trained with optim_step.
#include <gtest/gtest.h>
#include <seisoku/seisoku.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

namespace {

using seisoku::DType;
using seisoku::OptimGroup;
using seisoku::OptimKind;
using seisoku::Tensor;

Tensor filled(const seisoku::Shape& shape, double start, double step) {
  Tensor t = Tensor::empty(shape, DType::float64);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data_as<double>()[i] = start + step * static_cast<double>(i % 17);
  return t;
}

std::vector<double> values(const Tensor& t) {
  const double* p = t.data_as<double>();
  return {p, p + t.numel()};
}

OptimGroup group_of(const seisoku::OptimHyper& h, std::vector<Tensor> params, std::vector<Tensor> grads) {
  OptimGroup g;
  g.hyper = h;
  g.params = std::move(params);
  g.grads = std::move(grads);
  seisoku::optim_init_state(g);
  return g;
}

TEST(Optim, SgdMomentumL2MatchesLoop) {
  seisoku::OptimHyper h;
  h.lr = 0.1;
  h.momentum = 0.9;
  h.l2 = 0.01;
  Tensor w = filled({4, 5}, -1.0, 0.13), g = filled({4, 5}, 0.5, -0.07);
  std::vector<double> ref = values(w), buf(ref.size());
  OptimGroup grp = group_of(h, {w}, {g});
  for (int step = 0; step < 3; ++step) {
    seisoku::optim_step(grp);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const double gi = g.data_as<double>()[i] + 0.01 * ref[i];
      buf[i] = step == 0 ? gi : 0.9 * buf[i] + gi;
      ref[i] -= 0.1 * buf[i];
    }
  }
  for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(w.data_as<double>()[i], ref[i], 1e-14);
  EXPECT_EQ(grp.steps[0], 3);
}

TEST(Optim, AdamMatchesLoop) {
  seisoku::OptimHyper h;
  h.kind = OptimKind::adam;
  h.lr = 0.01;
  Tensor w = filled({3, 7}, -0.5, 0.05), g = filled({3, 7}, 0.3, -0.04);
  std::vector<double> ref = values(w), m(ref.size()), v(ref.size());
  OptimGroup grp = group_of(h, {w}, {g});
  for (int t = 1; t <= 4; ++t) {
    seisoku::optim_step(grp);
    for (std::size_t i = 0; i < ref.size(); ++i) {
      const double gi = g.data_as<double>()[i];
      m[i] = 0.9 * m[i] + 0.1 * gi;
      v[i] = 0.999 * v[i] + 0.001 * gi * gi;
      const double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
      ref[i] -= 0.01 * mh / (std::sqrt(vh) + 1e-8);
    }
  }
  for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(w.data_as<double>()[i], ref[i], 1e-12);
}

TEST(Optim, ProximalL1MaxNormAndExemptBias) {
  seisoku::OptimHyper h;
  h.lr = 0.5;
  h.l1 = 0.2;
  h.max_norm = 0.5;
  Tensor w = filled({6, 9}, -0.4, 0.05), g = filled({6, 9}, 0.2, -0.03);
  Tensor b = filled({6}, 1.0, 0.5), gb = filled({6}, 0.1, 0.0);
  const std::vector<double> b0 = values(b);
  OptimGroup grp = group_of(h, {w, b}, {g, gb});
  seisoku::optim_step(grp);
  const seisoku::OptimStats st = seisoku::optim_stats(grp);
  EXPECT_LT(st.nonzero[0], w.numel());  // exact zeros from the soft-threshold
  for (std::int64_t r = 0; r < 6; ++r) {
    double ss = 0.0;
    for (std::int64_t j = 0; j < 9; ++j) ss += std::pow(w.data_as<double>()[r * 9 + j], 2);
    EXPECT_LE(std::sqrt(ss), 0.5 * (1 + 1e-12));
  }
  for (std::size_t i = 0; i < b0.size(); ++i) EXPECT_DOUBLE_EQ(b.data_as<double>()[i], b0[i] - 0.5 * 0.1);
  EXPECT_NEAR(st.penalty, 0.2 * st.abs_sum[0], 1e-15);
}

TEST(Optim, NonFiniteGradientRaiseThenSkip) {
  seisoku::OptimHyper h;
  h.lr = 0.1;
  h.momentum = 0.9;
  Tensor w = filled({2, 3}, 0.0, 1.0), g = filled({2, 3}, 1.0, 0.0);
  g.data_as<double>()[4] = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> w1 = values(w);
  for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = i == 4 ? w1[i] : w1[i] + -0.1 * 1.0;
  OptimGroup grp = group_of(h, {w}, {g});
  grp.names = {"fc.weight"};
  try {
    seisoku::optim_step(grp);  // raise: the NaN element keeps its value, the others step
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'fc.weight'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(values(w), w1);
  EXPECT_EQ(grp.steps[0], 0);
  seisoku::OptimStepOptions skip;
  skip.nonfinite = seisoku::NonFinite::skip;
  EXPECT_FALSE(seisoku::optim_step(grp, skip).applied);  // skip: nothing changes
  EXPECT_EQ(values(w), w1);
  EXPECT_EQ(grp.steps[0], 0);
}

TEST(Optim, NonFiniteGradientRaiseStepsEveryFiniteElement) {
  // nonfinite raise without clipping: the check rides on the step's pass; an element with a
  // NaN/Inf gradient keeps its value and state, every other element is stepped.
  seisoku::OptimHyper h;
  h.lr = 0.1;
  h.momentum = 0.9;
  Tensor a = filled({40000}, 0.0, 1.0), ga = filled({40000}, 1.0, 0.5);
  Tensor b = filled({2, 3}, 0.0, 1.0), gb = filled({2, 3}, 1.0, 0.0);
  ga.data_as<double>()[16391] = std::numeric_limits<double>::infinity();
  ga.data_as<double>()[39999] = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> a0 = values(a), b0 = values(b);
  OptimGroup grp = group_of(h, {a, b}, {ga, gb});
  grp.names = {"big", "small"};
  try {
    seisoku::optim_step(grp);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'big' (group 0, tensor 0) holds 2 non-finite"), std::string::npos)
        << e.what();
  }
  const std::vector<double> a1 = values(a), m = values(grp.state[0][0]);
  for (std::int64_t i = 0; i < 40000; ++i) {
    const bool bad = i == 16391 || i == 39999;
    const double g = ga.data_as<double>()[i];
    // The first momentum step: buffer = g, w -= lr * g.
    EXPECT_EQ(a1[i], bad ? a0[i] : a0[i] + -0.1 * g) << i;
    EXPECT_EQ(m[i], bad ? 0.0 : g) << i;
  }
  for (std::size_t i = 0; i < b0.size(); ++i) EXPECT_EQ(values(b)[i], b0[i] + -0.1 * gb.data_as<double>()[i]);
  EXPECT_EQ(grp.steps[0], 0);
  EXPECT_EQ(grp.steps[1], 1);
}

TEST(Optim, BadHyperParametersThrow) {
  seisoku::OptimHyper h;
  h.lr = -1.0;
  EXPECT_THROW(seisoku::optim_check_hyper(h), std::invalid_argument);
  h.lr = 0.1;
  h.l1 = -1.0;
  EXPECT_THROW(seisoku::optim_check_hyper(h), std::invalid_argument);
  h.l1 = 0.0;
  h.kind = OptimKind::adam;
  h.beta2 = 1.0;
  EXPECT_THROW(seisoku::optim_check_hyper(h), std::invalid_argument);
  seisoku::OptimHyper ok;
  Tensor w = filled({2, 2}, 0.0, 1.0), g = filled({3}, 0.0, 1.0);
  OptimGroup grp = group_of(ok, {w}, {g});
  EXPECT_THROW(seisoku::optim_step(grp), std::invalid_argument);  // shape mismatch
}

TEST(Optim, ParameterInTwoGroupsThrowsBeforeAnyStep) {
  seisoku::OptimHyper h;
  h.lr = 0.1;
  Tensor a = filled({2, 2}, 0.0, 1.0), b = filled({3}, 1.0, 1.0), g = filled({2, 2}, 1.0, 0.0);
  Tensor gb = filled({3}, 1.0, 0.0);
  OptimGroup first = group_of(h, {a, b}, {g, gb}), second = group_of(h, {a}, {g});
  second.names = {"shared"};
  const std::vector<double> a0 = values(a);
  try {
    seisoku::optim_step(std::vector<OptimGroup*>{&first, &second});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'shared' (group 1, tensor 0) appears twice"), std::string::npos) << e.what();
  }
  EXPECT_EQ(values(a), a0);
  EXPECT_EQ(first.steps[0], 0);
}

// y = X a + c learned by a Linear(3 -> 1) with SGD-momentum, coupled L2 and max-norm.
TEST(Optim, TrainsLinearRegression) {
  const std::int64_t n = 64, d = 3;
  Tensor x = Tensor::empty({n, d}, DType::float64), y = Tensor::empty({n, 1}, DType::float64);
  const double a[3] = {0.5, -1.0, 0.25};
  for (std::int64_t i = 0; i < n; ++i) {
    double s = 0.3;
    for (std::int64_t j = 0; j < d; ++j) {
      const double v = std::sin(0.37 * static_cast<double>(i * (j + 1)) + static_cast<double>(j));
      x.data_as<double>()[i * d + j] = v;
      s += a[j] * v;
    }
    y.data_as<double>()[i] = s;
  }
  Tensor w = Tensor::zeros({1, d}, DType::float64), b = Tensor::zeros({1}, DType::float64);
  Tensor gw = Tensor::zeros({1, d}, DType::float64), gb = Tensor::zeros({1}, DType::float64);
  Tensor pred = Tensor::empty({n, 1}, DType::float64), err = Tensor::empty({n, 1}, DType::float64);
  seisoku::OptimHyper h;
  h.lr = 0.1;
  h.momentum = 0.9;
  h.l2 = 1e-4;
  h.max_norm = 10.0;
  OptimGroup grp = group_of(h, {w, b}, {gw, gb});
  double first = 0.0, last = 0.0;
  for (int it = 0; it < 200; ++it) {
    seisoku::gemm(x, w, pred, false, true);  // pred = x w^T
    double loss = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double e = pred.data_as<double>()[i] + b.data_as<double>()[0] - y.data_as<double>()[i];
      err.data_as<double>()[i] = 2.0 * e / static_cast<double>(n);
      loss += e * e / static_cast<double>(n);
    }
    if (it == 0) first = loss;
    last = loss;
    seisoku::gemm(err, x, gw, true, false);  // gw = err^T x
    seisoku::column_sum(err, gb, false);
    seisoku::optim_step(grp);
  }
  EXPECT_LT(last, 1e-3 * first);
  for (std::int64_t j = 0; j < d; ++j) EXPECT_NEAR(w.data_as<double>()[j], a[j], 1e-2);
  EXPECT_NEAR(b.data_as<double>()[0], 0.3, 1e-2);
}

TEST(Optim, OptimizerOverModuleParameters) {
  namespace nn = seisoku::nn;
  auto gen = std::make_shared<seisoku::Generator>(3);
  nn::LinearOptions opts;
  opts.dtype = DType::float64;
  nn::Sequential model({std::make_shared<nn::Linear>(4, 3, opts, gen), std::make_shared<nn::Linear>(3, 2, opts, gen)});
  seisoku::OptimHyper h;
  h.lr = 0.5;
  h.l2 = 0.1;
  nn::Optimizer opt(model, h);
  const auto named = model.named_parameters();
  OptimGroup& grp = opt.group();
  ASSERT_EQ(grp.params.size(), named.size());
  for (std::size_t i = 0; i < named.size(); ++i) {
    EXPECT_EQ(grp.names[i], named[i].first);
    EXPECT_EQ(grp.penalize[i], named[i].second->regularize ? 1 : 0);
    EXPECT_EQ(grp.params[i].data(), named[i].second->value().data());  // the module's own storage
  }
  // Biases: a value to see whether L2 touches them; gradients: stale values that zero_grad's
  // marks must hide from the step.
  for (const auto& [name, p] : named) {
    if (!p->regularize) seisoku::fill(p->value(), 1.0);
    seisoku::fill(p->grad(), 7.0);
  }
  std::vector<std::vector<double>> before;
  for (const auto& np : named) before.push_back(values(np.second->value()));
  opt.zero_grad();
  opt.step();  // zero gradients: only the L2 term moves the weights
  for (std::size_t i = 0; i < named.size(); ++i) {
    const std::vector<double> after = values(named[i].second->value());
    const double factor = named[i].second->regularize ? 1.0 - h.lr * h.l2 : 1.0;
    for (std::size_t k = 0; k < after.size(); ++k) EXPECT_DOUBLE_EQ(after[k], before[i][k] * factor) << named[i].first;
  }
}

}  // namespace
