// The C++ layer objects (seisoku::nn): whole-model gradients against central finite
// differences in float64, parameter sharing, dropout modes and bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "seisoku/seisoku.hpp"

namespace {

using seisoku::DType;
using seisoku::Tensor;
namespace nn = seisoku::nn;

Tensor random_tensor(const seisoku::Shape& shape, std::uint64_t seed) {
  Tensor t = Tensor::empty(shape, DType::float64);
  seisoku::uniform(t, seed, 0, -1.0, 1.0);
  return t;
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += a.data_as<double>()[i] * b.data_as<double>()[i];
  return s;
}

// Checks d/dtheta sum(G * model(x)) for a few entries of every parameter and of x.
// `reset` puts every generator back so each forward draws the same masks.
void check_gradients(nn::Module& model, const Tensor& x, const std::function<void()>& reset) {
  reset();
  const Tensor y0 = model.forward(x);
  const Tensor g = random_tensor(y0.shape(), 99);
  model.zero_grad();
  const Tensor grad_x = model.backward(g, true);
  auto objective = [&] {
    reset();
    return dot(model.forward(x), g);
  };
  auto check = [&](const Tensor& value, const Tensor& analytic, const char* what) {
    const std::int64_t n = value.numel();
    for (std::int64_t i : {std::int64_t{0}, n / 3, n / 2, n - 1}) {
      double* v = value.data_as<double>() + i;
      const double saved = *v, eps = 1e-6;
      *v = saved + eps;
      const double plus = objective();
      *v = saved - eps;
      const double minus = objective();
      *v = saved;
      const double numeric = (plus - minus) / (2 * eps);
      EXPECT_NEAR(analytic.data_as<double>()[i], numeric, 1e-6 * (1 + std::fabs(numeric))) << what << "[" << i << "]";
    }
  };
  for (const auto& [name, p] : model.named_parameters()) check(p->value, p->grad, name.c_str());
  check(x, grad_x, "x");
}

TEST(NnLayers, CnnGradients) {
  auto gen = std::make_shared<seisoku::Generator>(1);
  nn::Window conv{3, 3, 1, 1, 1, 1};
  nn::LinearOptions head;
  head.dtype = DType::float64;
  nn::Sequential model({std::make_shared<nn::Conv2d>(2, 4, conv, true, gen, DType::float64),
                        std::make_shared<nn::ActivationLayer>(seisoku::Activation::tanh),
                        std::make_shared<nn::MaxPool2d>(nn::Window{2, 2, 2, 2, 0, 0}),
                        std::make_shared<nn::Conv2d>(4, 3, nn::Window{1, 3, 1, 1, 0, 1}, false, gen, DType::float64),
                        std::make_shared<nn::AvgPool2d>(nn::Window{2, 2, 2, 2, 0, 0}),
                        std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(12, 5, head, gen)});
  check_gradients(model, random_tensor({3, 2, 8, 8}, 5), [] {});
}

TEST(NnLayers, MlpWithDropoutGradients) {
  auto gen = std::make_shared<seisoku::Generator>(2);
  nn::LinearOptions hidden;
  hidden.dtype = DType::float64;
  hidden.activation = seisoku::Activation::sigmoid;
  hidden.dropout = 0.3;
  nn::LinearOptions out;
  out.dtype = DType::float64;
  nn::Sequential model({std::make_shared<nn::GaussianNoise>(0.1, gen), std::make_shared<nn::Linear>(6, 8, hidden, gen),
                        std::make_shared<nn::Dropout>(0.2, gen), std::make_shared<nn::Linear>(8, 3, out, gen)});
  const std::uint64_t start = gen->offset();
  check_gradients(model, random_tensor({5, 6}, 6), [&] { gen->set_offset(start); });
}

TEST(NnLayers, DenoisingAutoencoderWithTiedWeights) {
  auto gen = std::make_shared<seisoku::Generator>(3);
  nn::LinearOptions enc;
  enc.dtype = DType::float64;
  // Smooth activations: relu's kink at 0 (all-zero units at zero bias) defeats central differences.
  enc.activation = seisoku::Activation::tanh;
  auto e1 = std::make_shared<nn::Linear>(10, 6, enc, gen);
  auto e2 = std::make_shared<nn::Linear>(6, 3, enc, gen);
  nn::Sequential model({std::make_shared<nn::GaussianNoise>(0.05, gen), e1, e2,
                        std::make_shared<nn::TiedLinear>(e2, true, seisoku::Activation::tanh),
                        std::make_shared<nn::TiedLinear>(e1, true, seisoku::Activation::sigmoid)});
  // The decoder shares the encoder's weights: 2 weights + 4 biases.
  EXPECT_EQ(model.parameters().size(), 6u);
  const std::uint64_t start = gen->offset();
  check_gradients(model, random_tensor({4, 10}, 7), [&] { gen->set_offset(start); });
}

TEST(NnLayers, SharedWeightAccumulatesBothUses) {
  auto gen = std::make_shared<seisoku::Generator>(4);
  nn::LinearOptions o;
  o.dtype = DType::float64;
  o.bias = false;
  auto first = std::make_shared<nn::Linear>(4, 4, o, gen);
  auto second = std::make_shared<nn::Linear>(4, 4, o, gen, first->weight);
  nn::Sequential model({first, second});
  ASSERT_EQ(model.parameters().size(), 1u);
  check_gradients(model, random_tensor({3, 4}, 8), [] {});
}

TEST(NnLayers, DropoutModes) {
  auto gen = std::make_shared<seisoku::Generator>(5);
  Tensor x = Tensor::empty({1000, 100}, DType::float32);
  seisoku::fill(x, 1.0);
  nn::Dropout inverted(0.25, gen, true), seed_mode(0.25, gen, false);
  const Tensor a = inverted.forward(x), b = seed_mode.forward(x);
  double kept = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const float v = a.data_as<float>()[i];
    ASSERT_TRUE(v == 0.0f || std::fabs(v - 1.0f / 0.75f) < 1e-6f);
    kept += v != 0.0f;
    ASSERT_TRUE(b.data_as<float>()[i] == 0.0f || b.data_as<float>()[i] == 1.0f);
  }
  EXPECT_NEAR(kept / a.numel(), 0.75, 0.01);
  inverted.eval();
  seed_mode.eval();
  EXPECT_FLOAT_EQ(inverted.forward(x).data_as<float>()[7], 1.0f);
  EXPECT_FLOAT_EQ(seed_mode.forward(x).data_as<float>()[7], 0.75f);
}

TEST(NnLayers, BadArguments) {
  auto gen = std::make_shared<seisoku::Generator>(6);
  EXPECT_THROW(nn::Linear(0, 3, nn::LinearOptions{}, gen), std::invalid_argument);
  nn::LinearOptions bad;
  bad.dropout = 1.0;
  EXPECT_THROW(nn::Linear(3, 3, bad, gen), std::invalid_argument);
  EXPECT_THROW(nn::Dropout(-0.1, gen), std::invalid_argument);
  EXPECT_THROW(nn::Linear(3, 3, nn::LinearOptions{}, nullptr), std::invalid_argument);
  nn::Linear layer(4, 2, nn::LinearOptions{}, gen);
  EXPECT_THROW(layer.forward(Tensor::zeros({5, 3}, DType::float32)), std::invalid_argument);
  EXPECT_THROW(layer.forward(Tensor::zeros({0, 4}, DType::float32)), std::invalid_argument);
  nn::Conv2d conv(1, 2, nn::Window{5, 5}, true, gen);
  EXPECT_THROW(conv.forward(Tensor::zeros({1, 1, 3, 3}, DType::float32)), std::invalid_argument);
  EXPECT_THROW(conv.forward(Tensor::zeros({1, 3, 8, 8}, DType::float32)), std::invalid_argument);
}

}  // namespace
