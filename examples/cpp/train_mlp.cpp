// Trains a regularized MLP (dropout, label smoothing, L2, max-norm) on three interleaved spirals with
// the seisoku C++ API alone, checks that it learns them, then stores its parameters as Q8.8 fixed
// point (16-bit codes) and checks the quantized model scores as well. Before that, it converts the
// trained MLP to int8 (per-channel weights, static input scales calibrated on the training data,
// ReLU fused into the int8 epilogue) and checks that model too. Exit status 0 on success.
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include <seisoku/int8.hpp>
#include <seisoku/nn/quantized.hpp>
#include <seisoku/seisoku.hpp>

using seisoku::DType;
using seisoku::Tensor;
namespace nn = seisoku::nn;

int main() {
  constexpr std::int64_t kPerClass = 100, kClasses = 3, kN = kPerClass * kClasses;
  // Data: 3 spirals with a little Gaussian noise.
  Tensor x = Tensor::empty({kN, 2}, DType::float32);
  Tensor noise = Tensor::empty({kN, 2}, DType::float32);
  Tensor y = Tensor::empty({kN}, DType::int64);
  seisoku::Generator data_gen(7);
  seisoku::normal(noise, data_gen.seed(), data_gen.next_offset(), 0.0, 0.1);
  for (std::int64_t c = 0; c < kClasses; ++c) {
    for (std::int64_t i = 0; i < kPerClass; ++i) {
      const std::int64_t k = c * kPerClass + i;
      const double r = static_cast<double>(i) / kPerClass;
      const double t = 4.0 * c + 4.0 * r;
      x.data_as<float>()[2 * k] = static_cast<float>(r * std::sin(t)) + noise.data_as<float>()[2 * k] * 0.3f;
      x.data_as<float>()[2 * k + 1] = static_cast<float>(r * std::cos(t)) + noise.data_as<float>()[2 * k + 1] * 0.3f;
      y.data_as<std::int64_t>()[k] = c;
    }
  }

  // Model: 2 -> 64 -> 64 -> 3, ReLU, dropout 0.1 on hidden units.
  auto gen = std::make_shared<seisoku::Generator>(0);  // initialisation and dropout masks
  nn::LinearOptions hidden;
  hidden.activation = seisoku::Activation::relu;
  hidden.dropout = 0.1;
  nn::Sequential model({std::make_shared<nn::Linear>(2, 64, hidden, gen),
                        std::make_shared<nn::Linear>(64, 64, hidden, gen),
                        std::make_shared<nn::Linear>(64, 3, nn::LinearOptions{}, gen)});

  nn::CrossEntropyLoss loss(/*label_smoothing=*/0.05);
  // SGD with Nesterov momentum, coupled L2 and a max-norm bound on each unit's incoming weights,
  // fused into one pass per step; biases are exempt from both.
  seisoku::OptimHyper hyper;
  hyper.lr = 0.1;
  hyper.momentum = 0.9;
  hyper.nesterov = true;
  hyper.l2 = 1e-4;
  hyper.max_norm = 4.0;
  nn::Optimizer optimizer(model, hyper);
  for (int epoch = 0; epoch < 600; ++epoch) {
    model.train();
    optimizer.zero_grad();
    const Tensor value = loss.forward(model.forward(x), y);
    model.backward(loss.backward(), /*need_input_grad=*/false);
    optimizer.step();
    if (epoch % 200 == 0) std::printf("epoch %4d  loss %.4f\n", epoch, static_cast<double>(*value.data_as<float>()));
  }

  model.eval();
  auto accuracy_of = [&](nn::Module& m) {
    const Tensor logits = m.forward(x);
    std::int64_t correct = 0;
    for (std::int64_t k = 0; k < kN; ++k) {
      const float* row = logits.data_as<float>() + k * kClasses;
      std::int64_t best = 0;
      for (std::int64_t c = 1; c < kClasses; ++c)
        if (row[c] > row[best]) best = c;
      correct += best == y.data_as<std::int64_t>()[k];
    }
    return static_cast<double>(correct) / kN;
  };
  auto training_accuracy = [&] { return accuracy_of(model); };
  const double accuracy = training_accuracy();
  std::printf("training accuracy %.3f\n", accuracy);
  // Every weight row (one hidden unit's incoming weights) is inside the max-norm ball.
  for (const auto& [name, p] : model.named_parameters()) {
    if (!p->regularize) continue;
    const seisoku::Tensor norms = seisoku::Tensor::empty({p->value().shape()[0]}, DType::float32);
    seisoku::row_norm(p->value(), 2.0, norms);
    for (std::int64_t r = 0; r < norms.numel(); ++r)
      if (norms.data_as<float>()[r] > hyper.max_norm * (1.0 + 1e-5)) {
        std::printf("FAILED: row %lld of %s has norm %g > %g\n", static_cast<long long>(r), name.c_str(),
                    static_cast<double>(norms.data_as<float>()[r]), hyper.max_norm);
        return 1;
      }
  }
  if (accuracy < 0.9) {
    std::printf("FAILED: the MLP did not learn the spirals\n");
    return 1;
  }

  // int8: each Linear becomes a QuantizedLinear (int8 x int8 -> int32 products, AVX-512 VNNI or
  // AVX2 chosen at run time) whose input scale is max|input| / 127 over the training data.
  std::vector<nn::ModulePtr> int8_layers;
  std::int64_t int8_bytes = 0;
  Tensor h = x;
  for (const nn::ModulePtr& layer : model.layers()) {
    const auto& linear = dynamic_cast<const nn::Linear&>(*layer);
    nn::QuantizedOptions options;
    options.input_scale = seisoku::int8_scale_of(seisoku::int8_max_abs(h));
    auto q = nn::QuantizedLinear::from_linear(linear, /*per_channel=*/true, options);
    int8_bytes += q->nbytes();
    int8_layers.push_back(q);
    h = layer->forward(h);
  }
  nn::Sequential int8_model(int8_layers);
  const double int8_accuracy = accuracy_of(int8_model);
  std::printf("int8 (%s kernel): training accuracy %.3f, %lld bytes\n", seisoku::int8_kernel().c_str(),
              int8_accuracy, static_cast<long long>(int8_bytes));
  if (int8_accuracy < accuracy - 0.02) {
    std::printf("FAILED: the int8 model lost accuracy\n");
    return 1;
  }

  // The lecture's 16-bit fixed point: each parameter stored as Q8.8 codes (8 integer bits with the
  // sign, 8 fraction bits, rounded to nearest) and read back into the model.
  std::int64_t float_bytes = 0, code_bytes = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    const Tensor w = p->value();
    const Tensor codes = Tensor::empty(w.shape(), seisoku::fixed_point_dtype(8, 8));
    seisoku::quantize_fixed(w, codes, 8, 8, seisoku::Rounding::nearest);
    const Tensor back = Tensor::empty(w.shape(), DType::float32);
    seisoku::dequantize_fixed(codes, back, 8);
    p->set_value(back);
    float_bytes += w.numel() * static_cast<std::int64_t>(seisoku::itemsize(w.dtype()));
    code_bytes += codes.numel() * static_cast<std::int64_t>(seisoku::itemsize(codes.dtype()));
  }
  const double quantized = training_accuracy();
  std::printf("Q8.8: training accuracy %.3f, %lld bytes of parameters instead of %lld\n", quantized,
              static_cast<long long>(code_bytes), static_cast<long long>(float_bytes));
  if (2 * code_bytes != float_bytes || quantized < accuracy - 0.02) {
    std::printf("FAILED: the Q8.8 model is not half the size or lost accuracy\n");
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
