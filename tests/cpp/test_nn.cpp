// The C++ layer objects (seisoku::nn): whole-model gradients against central finite
// differences in float64, the gradient rule, parameter sharing and tying, dropout modes,
// DropConnect, MultiHead, the autoencoder, result memory reuse and bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

#include "seisoku/seisoku.hpp"

namespace {

using seisoku::Activation;
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

std::vector<double> values(const Tensor& t) { return {t.data_as<double>(), t.data_as<double>() + t.numel()}; }

nn::LinearOptions f64(Activation act = Activation::identity) {
  nn::LinearOptions o;
  o.dtype = DType::float64;
  o.activation = act;
  return o;
}

// Checks d/dtheta (sum(G * model(x)) + extra()) for a few entries of every parameter and of x,
// extra() running after a backward pass (penalties are recorded by backward and apply_penalties).
// `reset` puts every generator back so each forward draws the same masks.
void check_gradients(nn::Module& model, const Tensor& x, const std::function<void()>& reset,
                     const std::function<double()>& extra = [] { return 0.0; }) {
  reset();
  const Tensor y0 = model.forward(x);
  const Tensor g = random_tensor(y0.shape(), 99);
  model.zero_grad();
  const Tensor grad_x = model.backward(g, true);
  extra();  // penalties add their gradients after the backward pass
  auto objective = [&] {
    reset();
    const double v = dot(model.forward(x), g);
    model.backward(g, true);
    return v + extra();
  };
  auto check = [&](const Tensor& value, const Tensor& analytic, const char* what) {
    const std::int64_t n = value.numel();
    const std::vector<double> expected = values(analytic);
    for (std::int64_t i : {std::int64_t{0}, n / 3, n / 2, n - 1}) {
      double* v = value.data_as<double>() + i;
      const double saved = *v, eps = 1e-6;
      *v = saved + eps;
      const double plus = objective();
      *v = saved - eps;
      const double minus = objective();
      *v = saved;
      const double numeric = (plus - minus) / (2 * eps);
      EXPECT_NEAR(expected[static_cast<std::size_t>(i)], numeric, 1e-6 * (1 + std::fabs(numeric)))
          << what << "[" << i << "]";
    }
  };
  std::vector<std::pair<std::string, Tensor>> analytic;
  for (const auto& [name, p] : model.named_parameters()) analytic.emplace_back(name, p->grad().to(seisoku::Device::cpu));
  std::size_t k = 0;
  for (const auto& [name, p] : model.named_parameters()) check(p->value(), analytic[k++].second, name.c_str());
  check(x, grad_x.to(seisoku::Device::cpu), "x");
}

TEST(NnLayers, CnnGradients) {
  auto gen = std::make_shared<seisoku::Generator>(1);
  nn::Conv2dOptions conv;
  conv.dtype = DType::float64;
  nn::Conv2dOptions no_bias = conv;
  no_bias.bias = false;
  nn::Sequential model({std::make_shared<nn::Conv2d>(2, 4, nn::Window{3, 3, 1, 1, 1, 1}, conv, gen),
                        std::make_shared<nn::Tanh>(),
                        std::make_shared<nn::MaxPool2d>(nn::Window{2, 2, 2, 2, 0, 0}),
                        std::make_shared<nn::Conv2d>(4, 3, nn::Window{1, 3, 1, 1, 0, 1}, no_bias, gen),
                        std::make_shared<nn::AvgPool2d>(nn::Window{2, 2, 2, 2, 0, 0}),
                        std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(12, 5, f64(), gen)});
  check_gradients(model, random_tensor({3, 2, 8, 8}, 5), [] {});
}

TEST(NnLayers, MlpWithDropoutAndNoiseGradients) {
  auto gen = std::make_shared<seisoku::Generator>(2);
  nn::LinearOptions hidden = f64(Activation::sigmoid);
  hidden.dropout = 0.3;
  nn::Sequential model({std::make_shared<nn::GaussianNoise>(0.1, gen), std::make_shared<nn::Linear>(6, 8, hidden, gen),
                        std::make_shared<nn::Dropout>(0.2, nn::DropoutMode::lecture, gen),
                        std::make_shared<nn::Linear>(8, 3, f64(), gen), std::make_shared<nn::Softmax>()});
  const std::uint64_t start = gen->offset();
  check_gradients(model, random_tensor({5, 6}, 6), [&] { gen->set_offset(start); });
}

TEST(NnLayers, DropConnectGradientsAndGaussianInference) {
  auto gen = std::make_shared<seisoku::Generator>(9);
  nn::DropConnectOptions o;
  o.dtype = DType::float64;
  o.activation = Activation::tanh;
  o.p = 0.4;
  auto layer = std::make_shared<nn::DropConnect>(6, 4, o, gen);
  nn::Sequential model({layer, std::make_shared<nn::Linear>(4, 2, f64(), gen)});
  const std::uint64_t start = gen->offset();
  check_gradients(model, random_tensor({3, 6}, 10), [&] { gen->set_offset(start); });
  // Evaluation: the Gaussian inference with p = 0 equals the deterministic layer.
  nn::DropConnectOptions none = o;
  none.p = 0.0;
  none.inference = nn::DropConnectInference::gaussian;
  nn::DropConnect exact(6, 4, none, gen, layer->weight(), layer->bias());
  exact.eval();
  nn::Linear plain(6, 4, f64(Activation::tanh), gen, layer->weight(), layer->bias());
  const Tensor x = random_tensor({3, 6}, 11);
  const std::vector<double> a = values(exact.forward(x)), b = values(plain.forward(x));
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12);
}

TEST(NnLayers, DenoisingAutoencoderWithTiedWeights) {
  nn::AutoEncoderOptions o;
  o.dtype = DType::float64;
  // Smooth activations: relu's kink at 0 (all-zero units at zero bias) defeats central differences.
  o.activation = Activation::tanh;
  o.noise_std = 0.05;
  auto gen = std::make_shared<seisoku::Generator>(3);
  nn::AutoEncoder model({10, 6, 3}, o, gen);
  // The decoder shares the encoder's weights: 2 weights + 4 biases.
  EXPECT_EQ(model.parameters().size(), 6u);
  const std::uint64_t start = gen->offset();
  check_gradients(model, random_tensor({4, 10}, 7), [&] { gen->set_offset(start); });
  EXPECT_THROW(model.encode(random_tensor({4, 10}, 8)), std::invalid_argument);  // training mode
  model.eval();
  EXPECT_EQ(model.encode(random_tensor({4, 10}, 8)).shape(), (seisoku::Shape{4, 3}));
}

TEST(NnLayers, MultiHeadSumsTheHeadsIntoTheTrunk) {
  auto gen = std::make_shared<seisoku::Generator>(12);
  auto trunk = std::make_shared<nn::Linear>(5, 4, f64(Activation::tanh), gen);
  auto a = std::make_shared<nn::Linear>(4, 2, f64(), gen), b = std::make_shared<nn::Linear>(4, 3, f64(), gen);
  nn::MultiHead model(trunk, {{"a", a}, {"b", b}});
  const Tensor x = random_tensor({6, 5}, 13);
  const nn::HeadOutputs out = model.forward_heads(x);
  ASSERT_EQ(out.size(), 2u);
  const Tensor ga = random_tensor(out[0].second.shape(), 14), gb = random_tensor(out[1].second.shape(), 15);
  model.zero_grad();
  const Tensor gx = model.backward_heads({{"a", ga}, {"b", gb}});
  // The same through the trunk alone with the sum of the heads' input gradients.
  nn::Linear twin(5, 4, f64(Activation::tanh), gen, trunk->weight(), trunk->bias());
  twin.forward(x);
  Tensor sum = a->backward(ga);
  seisoku::axpy(1.0, b->backward(gb), sum);
  const std::vector<double> expected = values(twin.backward(sum)), got = values(gx);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-12);
  EXPECT_THROW(model.forward(x), std::invalid_argument);
  EXPECT_THROW(model.backward_heads({{"c", ga}}), std::invalid_argument);
}

TEST(NnLayers, SharedWeightAccumulatesBothUses) {
  auto gen = std::make_shared<seisoku::Generator>(4);
  nn::LinearOptions o = f64();
  o.bias = false;
  auto first = std::make_shared<nn::Linear>(4, 4, o, gen);
  auto second = std::make_shared<nn::Linear>(4, 4, o, gen, first->weight());
  nn::Sequential model({first, second});
  ASSERT_EQ(model.parameters().size(), 1u);
  check_gradients(model, random_tensor({3, 4}, 8), [] {});
}

TEST(NnLayers, TieAndActivityPenaltiesHaveTheirGradients) {
  auto gen = std::make_shared<seisoku::Generator>(16);
  auto l1 = std::make_shared<nn::Linear>(4, 4, f64(Activation::tanh), gen);
  auto l2 = std::make_shared<nn::Linear>(4, 4, f64(Activation::tanh), gen);
  nn::Sequential model({l1, std::make_shared<nn::ActivityRegularization>(0.3, 2), l2});
  model.register_module("tie", std::make_shared<nn::Tie>(l1->weight(), l2->weight(), 0.7));
  EXPECT_EQ(model.parameters().size(), 4u);  // the tie lists no parameters of its own
  check_gradients(model, random_tensor({3, 4}, 17), [] {}, [&] { return model.apply_penalties(); });
  EXPECT_GT(model.penalty(), 0.0);
}

TEST(NnGradients, ZeroGradMarksAndTheNextBackwardOverwrites) {
  auto gen = std::make_shared<seisoku::Generator>(18);
  nn::Linear layer(3, 2, f64(Activation::relu), gen);
  const Tensor x = random_tensor({4, 3}, 19), g = random_tensor({4, 2}, 20);
  layer.forward(x);
  layer.backward(g);
  const std::vector<double> once = values(layer.weight()->grad());
  seisoku::fill(layer.weight()->grad_memory(), std::nan(""));  // stale memory must never show
  layer.zero_grad();
  EXPECT_TRUE(layer.weight()->grad_marked_zero());
  layer.forward(x);
  layer.backward(g);
  EXPECT_FALSE(layer.weight()->grad_marked_zero());
  EXPECT_EQ(values(layer.weight()->grad()), once);
  layer.forward(x);
  layer.backward(g);  // no zero_grad: adds
  const std::vector<double> twice = values(layer.weight()->grad());
  for (std::size_t i = 0; i < once.size(); ++i) EXPECT_DOUBLE_EQ(twice[i], 2 * once[i]);
  // A marked gradient reads as zeros; a failed backward leaves the marks.
  layer.zero_grad();
  for (double v : values(layer.bias()->grad())) EXPECT_EQ(v, 0.0);
  layer.zero_grad();
  EXPECT_THROW(layer.backward(Tensor::zeros({4, 2}, DType::float32)), std::invalid_argument);
  EXPECT_TRUE(layer.weight()->grad_marked_zero());
}

TEST(NnMemory, ResultsAreReusedOnlyOnceNothingHoldsThem) {
  auto gen = std::make_shared<seisoku::Generator>(21);
  nn::Sequential model({std::make_shared<nn::Linear>(8, 16, f64(Activation::relu), gen),
                        std::make_shared<nn::Linear>(16, 4, f64(), gen)});
  const Tensor x = random_tensor({5, 8}, 22);
  std::vector<const void*> seen;
  for (int step = 0; step < 6; ++step) {
    const Tensor y = model.forward(x);
    bool known = false;
    for (const void* p : seen) known = known || p == y.data();
    if (!known) seen.push_back(y.data());
  }
  EXPECT_LE(seen.size(), 2u);  // two buffers alternate
  std::vector<Tensor> held;
  for (int step = 0; step < 4; ++step) held.push_back(model.forward(x));
  for (std::size_t i = 0; i < held.size(); ++i)
    for (std::size_t j = i + 1; j < held.size(); ++j) EXPECT_NE(held[i].data(), held[j].data());
}

TEST(NnLayers, DropoutModes) {
  Tensor x = Tensor::empty({1000, 100}, DType::float32);
  seisoku::fill(x, 1.0);
  auto gen = std::make_shared<seisoku::Generator>(5);
  nn::Dropout inverted(0.25, nn::DropoutMode::inverted, gen), lecture(0.25, nn::DropoutMode::lecture, gen);
  const Tensor a = inverted.forward(x), b = lecture.forward(x);
  double kept = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const float v = a.data_as<float>()[i];
    ASSERT_TRUE(v == 0.0f || std::fabs(v - 1.0f / 0.75f) < 1e-6f);
    kept += v != 0.0f;
    ASSERT_TRUE(b.data_as<float>()[i] == 0.0f || b.data_as<float>()[i] == 1.0f);
  }
  EXPECT_NEAR(kept / a.numel(), 0.75, 0.01);
  inverted.eval();
  lecture.eval();
  EXPECT_FLOAT_EQ(inverted.forward(x).data_as<float>()[7], 1.0f);
  EXPECT_FLOAT_EQ(lecture.forward(x).data_as<float>()[7], 0.75f);
}

TEST(NnLayers, LayersWithoutAGeneratorDrawFromTheProcessWideOne) {
  seisoku::manual_seed(77);
  nn::Linear first(6, 5, nn::LinearOptions{});
  seisoku::manual_seed(77);
  nn::Linear second(6, 5, nn::LinearOptions{});
  EXPECT_EQ(std::vector<float>(first.weight()->value().data_as<float>(), first.weight()->value().data_as<float>() + 30),
            std::vector<float>(second.weight()->value().data_as<float>(),
                               second.weight()->value().data_as<float>() + 30));
  EXPECT_EQ(seisoku::default_generator()->offset(), 1u);
}

TEST(NnLayers, BadArguments) {
  auto gen = std::make_shared<seisoku::Generator>(6);
  EXPECT_THROW(nn::Linear(0, 3, nn::LinearOptions{}, gen), std::invalid_argument);
  nn::LinearOptions bad;
  bad.dropout = 1.0;
  EXPECT_THROW(nn::Linear(3, 3, bad, gen), std::invalid_argument);
  EXPECT_THROW(nn::Dropout(-0.1), std::invalid_argument);
  EXPECT_THROW(nn::GaussianNoise(-1.0), std::invalid_argument);
  EXPECT_THROW(nn::ActivityRegularization(0.1, 3), std::invalid_argument);
  EXPECT_THROW(nn::AutoEncoder(std::vector<std::int64_t>{5}), std::invalid_argument);
  EXPECT_THROW(nn::MaxPool2d(nn::Window{2, 2, 1, 1, 2, 2}), std::invalid_argument);
  nn::Linear layer(4, 2, nn::LinearOptions{}, gen);
  EXPECT_THROW(layer.backward(Tensor::zeros({5, 2}, DType::float32)), std::invalid_argument);  // no forward yet
  EXPECT_THROW(layer.forward(Tensor::zeros({5, 3}, DType::float32)), std::invalid_argument);
  EXPECT_THROW(layer.forward(Tensor::zeros({0, 4}, DType::float32)), std::invalid_argument);
  EXPECT_THROW(nn::Linear(4, 3, nn::LinearOptions{}, gen, layer.weight()), std::invalid_argument);  // shape
  EXPECT_THROW(nn::Tie(layer.weight(), std::make_shared<nn::Linear>(3, 3)->weight(), 0.1), std::invalid_argument);
  nn::Conv2d conv(1, 2, nn::Window{5, 5}, nn::Conv2dOptions{}, gen);
  EXPECT_THROW(conv.forward(Tensor::zeros({1, 1, 3, 3}, DType::float32)), std::invalid_argument);
  EXPECT_THROW(conv.forward(Tensor::zeros({1, 3, 8, 8}, DType::float32)), std::invalid_argument);
  nn::Sequential empty;
  EXPECT_THROW(empty.append(nullptr), std::invalid_argument);
}

}  // namespace
