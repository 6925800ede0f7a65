#pragma once
// Models made of modules: Sequential, a shared trunk with named heads (multi-task learning) and
// the (denoising) autoencoder with tied weights.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "seisoku/activation.hpp"
#include "seisoku/nn/layers.hpp"
#include "seisoku/nn/module.hpp"

namespace seisoku::nn {

// Modules applied in order (children "0", "1", ...); backward runs them in reverse. A whole model
// of built-in layers runs forward and backward without leaving C++.
class SEISOKU_API Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> modules);
  Sequential& append(ModulePtr module);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "Sequential"; }
  const std::vector<ModulePtr>& layers() const { return layers_; }
  std::size_t size() const { return layers_.size(); }

 private:
  std::vector<ModulePtr> layers_;
};

using HeadOutputs = std::vector<std::pair<std::string, Tensor>>;

// A shared trunk feeding several named heads. forward_heads(x) gives every head's output;
// backward_heads takes the heads' gradients (a head left out contributes nothing) and sums them
// into the trunk. As one output per head is not one tensor, forward/backward of Module throw:
// a MultiHead is a model, not a layer of a Sequential.
class SEISOKU_API MultiHead : public Module {
 public:
  MultiHead(ModulePtr trunk, std::vector<std::pair<std::string, ModulePtr>> heads);
  HeadOutputs forward_heads(const Tensor& x);
  Tensor backward_heads(const HeadOutputs& grads, bool need_input_grad = true);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "MultiHead"; }
  const ModulePtr& trunk() const { return trunk_; }
  const std::vector<std::pair<std::string, ModulePtr>>& heads() const { return heads_; }

 private:
  ModulePtr trunk_;
  std::vector<std::pair<std::string, ModulePtr>> heads_;
};

struct AutoEncoderOptions {
  Activation activation = Activation::relu;            // every layer but the reconstruction
  Activation output_activation = Activation::sigmoid;  // the reconstruction (inputs in [0, 1])
  double slope = 0.01;                                 // leaky_relu
  bool tied = true;       // the decoder uses the encoder's weights transposed (TiedLinear)
  double noise_std = 0.0; // Gaussian noise on the input in training: a denoising autoencoder
  DType dtype = DType::float32;
  Device device = Device::cpu;
  int device_index = 0;
};

// Encoder Linear layers down to a code, decoder back up: sizes = (inputs, hidden..., code).
// Children: "noise" (GaussianNoise), "encoder" and "decoder" (Sequential).
class SEISOKU_API AutoEncoder : public Module {
 public:
  AutoEncoder(const std::vector<std::int64_t>& sizes, const AutoEncoderOptions& options = {},
              std::shared_ptr<Generator> generator = nullptr);
  // From existing parts: reconstruction = decoder(encoder(noise(x))).
  AutoEncoder(std::shared_ptr<Sequential> encoder, std::shared_ptr<Sequential> decoder,
              std::shared_ptr<GaussianNoise> noise);
  // The code of x (no noise).
  Tensor encode(const Tensor& x);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "AutoEncoder"; }
  const std::shared_ptr<Sequential>& encoder() const { return encoder_; }
  const std::shared_ptr<Sequential>& decoder() const { return decoder_; }
  const std::shared_ptr<GaussianNoise>& noise() const { return noise_; }

 private:
  void attach();
  std::shared_ptr<GaussianNoise> noise_;
  std::shared_ptr<Sequential> encoder_, decoder_;
};

}  // namespace seisoku::nn
