// Three models the lecture describes, built and trained with the seisoku C++ API alone:
//   1. a DropConnect classifier, evaluated with the moment-matched Gaussian inference;
//   2. a multi-task model: one shared trunk, a classification head and a regression head;
//   3. a denoising autoencoder whose decoder uses the encoder's weights transposed.
// Exit status 0 when each of them learns its task.
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include <seisoku/seisoku.hpp>

using seisoku::Activation;
using seisoku::DType;
using seisoku::Tensor;
namespace nn = seisoku::nn;

namespace {

constexpr std::int64_t kN = 512, kFeatures = 8;

// Inputs uniform in [-1, 1); class 1 where the first two features sum to more than zero.
void make_data(Tensor& x, Tensor& labels, Tensor& target) {
  seisoku::Generator gen(11);
  x = Tensor::empty({kN, kFeatures}, DType::float32);
  seisoku::uniform(x, gen.seed(), gen.next_offset(), -1.0, 1.0);
  labels = Tensor::empty({kN}, DType::int64);
  target = Tensor::empty({kN, 1}, DType::float32);
  for (std::int64_t i = 0; i < kN; ++i) {
    const float* row = x.data_as<float>() + i * kFeatures;
    labels.data_as<std::int64_t>()[i] = row[0] + row[1] > 0.0f ? 1 : 0;
    target.data_as<float>()[i] = row[2] * row[3];  // the regression task
  }
}

double accuracy(const Tensor& logits, const Tensor& labels) {
  std::int64_t correct = 0;
  const std::int64_t k = logits.shape()[1];
  for (std::int64_t i = 0; i < logits.shape()[0]; ++i) {
    const float* row = logits.data_as<float>() + i * k;
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < k; ++c)
      if (row[c] > row[best]) best = c;
    correct += best == labels.data_as<std::int64_t>()[i];
  }
  return static_cast<double>(correct) / static_cast<double>(logits.shape()[0]);
}

seisoku::OptimHyper sgd(double lr) {
  seisoku::OptimHyper h;
  h.lr = lr;
  h.momentum = 0.9;
  h.l2 = 1e-4;
  return h;
}

}  // namespace

int main() {
  Tensor x, labels, target;
  make_data(x, labels, target);
  auto gen = std::make_shared<seisoku::Generator>(0);
  int failures = 0;

  // 1. DropConnect: each weight dropped with p = 0.3 per mini-batch in training.
  {
    nn::DropConnectOptions dc;
    dc.p = 0.3;
    dc.activation = Activation::relu;
    dc.inference = nn::DropConnectInference::gaussian;
    dc.samples = 128;
    nn::Sequential model({std::make_shared<nn::DropConnect>(kFeatures, 32, dc, gen),
                          std::make_shared<nn::Linear>(32, 2, nn::LinearOptions{}, gen)});
    nn::CrossEntropyLoss loss(0.05);
    nn::Optimizer opt(model, sgd(0.1));
    for (int step = 0; step < 300; ++step) {
      opt.zero_grad();
      loss.forward(model.forward(x), labels);
      model.backward(loss.backward(), false);
      opt.step();
    }
    model.eval();
    const double acc = accuracy(model.forward(x), labels);
    std::printf("DropConnect (Gaussian inference): training accuracy %.3f\n", acc);
    failures += acc < 0.9;
  }

  // 2. Multi-task: a shared trunk, a 2-class head and a regression head, losses summed.
  {
    nn::LinearOptions hidden;
    hidden.activation = Activation::tanh;
    auto trunk = std::make_shared<nn::Linear>(kFeatures, 32, hidden, gen);
    nn::MultiHead model(trunk, {{"cls", std::make_shared<nn::Linear>(32, 2, nn::LinearOptions{}, gen)},
                                {"reg", std::make_shared<nn::Linear>(32, 1, nn::LinearOptions{}, gen)}});
    nn::CrossEntropyLoss cls_loss;
    nn::MSELoss reg_loss;
    nn::Optimizer opt(model, sgd(0.1));
    double mse = 0.0;
    for (int step = 0; step < 400; ++step) {
      opt.zero_grad();
      const nn::HeadOutputs out = model.forward_heads(x);
      cls_loss.forward(out[0].second, labels);
      mse = *reg_loss.forward(out[1].second, target).data_as<float>();
      model.backward_heads({{"cls", cls_loss.backward()}, {"reg", reg_loss.backward()}}, false);
      opt.step();
    }
    const double acc = accuracy(model.forward_heads(x)[0].second, labels);
    std::printf("MultiHead: classification accuracy %.3f, regression MSE %.4f\n", acc, mse);
    failures += acc < 0.9 || mse > 0.05;
  }

  // 3. A denoising autoencoder 8 -> 6 -> 3 -> 6 -> 8, tied weights, noise 0.1 on the input, on
  //    data that lie near a 3-dimensional subspace (8 features mixing 3 factors).
  {
    Tensor factors = Tensor::empty({kN, 3}, DType::float32), mixing = Tensor::empty({3, kFeatures}, DType::float32);
    seisoku::uniform(factors, 5, 0, -1.0, 1.0);
    seisoku::uniform(mixing, 5, 1, -1.0, 1.0);
    Tensor data = Tensor::empty({kN, kFeatures}, DType::float32);
    seisoku::gemm(factors, mixing, data);
    nn::AutoEncoderOptions o;
    o.activation = Activation::tanh;
    o.output_activation = Activation::identity;
    o.noise_std = 0.1;
    nn::AutoEncoder model({kFeatures, 6, 3}, o, gen);
    std::printf("AutoEncoder: %zu parameter tensors (2 weights shared by encoder and decoder, 4 biases)\n",
                model.parameters().size());
    nn::MSELoss loss;
    nn::Optimizer opt(model, sgd(0.05));
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 800; ++step) {
      opt.zero_grad();
      last = *loss.forward(model.forward(data), data).data_as<float>();
      if (step == 0) first = last;
      model.backward(loss.backward(), false);
      opt.step();
    }
    std::printf("AutoEncoder: reconstruction MSE %.4f -> %.4f\n", first, last);
    failures += !(last < 0.2 * first) || model.parameters().size() != 6;
  }

  std::printf(failures == 0 ? "OK\n" : "FAILED\n");
  return failures == 0 ? 0 : 1;
}
