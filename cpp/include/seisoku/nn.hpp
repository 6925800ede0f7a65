#pragma once
// Layers as objects for C++ training loops: forward / backward over Tensors, parameters
// holding a value and a gradient. The semantics match seisoku.nn in Python: backward adds
// parameter gradients into Parameter::grad (shared parameters accumulate) and returns the
// gradient of the input; stochastic layers draw a fresh Philox offset per training forward
// and draw the same mask again in backward.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "seisoku/activation.hpp"
#include "seisoku/linear.hpp"
#include "seisoku/optim.hpp"
#include "seisoku/random.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::nn {

struct SEISOKU_API Parameter {
  Tensor value;
  Tensor grad;
  std::string name;
  bool regularize = true;  // norm penalties apply (false for biases)
};
using ParameterPtr = std::shared_ptr<Parameter>;

// A parameter owning `value`, with a zero gradient of the same shape, dtype and device.
SEISOKU_API ParameterPtr make_parameter(Tensor value, std::string name, bool regularize);

// Initialisers: N(0, 2 / fan_in) (He) and U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot).
SEISOKU_API void he_normal(const Tensor& weight, Generator& gen);
SEISOKU_API void glorot_uniform(const Tensor& weight, Generator& gen);

class Module;

// An optimizer parameter group over these parameters for seisoku::optim_step: its tensors are the
// parameters' value and grad tensors themselves (steps update the module in place), penalties
// and max-norm apply where Parameter::regularize (weights, not biases), messages use the dotted
// names, and the state buffers are allocated. The gradients must stay the same tensors (backward
// and zero_grad write into them in place).
SEISOKU_API OptimGroup optim_group(const std::vector<std::pair<std::string, ParameterPtr>>& params,
                                   const OptimHyper& hyper);
SEISOKU_API OptimGroup optim_group(const Module& module, const OptimHyper& hyper);

class SEISOKU_API Module {
 public:
  virtual ~Module();
  virtual Tensor forward(const Tensor& x) = 0;
  virtual Tensor backward(const Tensor& grad, bool need_input_grad = true) = 0;
  // Every parameter once, with dotted names (a shared parameter under its first name).
  std::vector<std::pair<std::string, ParameterPtr>> named_parameters() const;
  std::vector<ParameterPtr> parameters() const;
  void zero_grad() const;
  virtual void train(bool mode = true) { training_ = mode; }
  void eval() { train(false); }
  bool training() const { return training_; }

 protected:
  // Appends this module's own parameters and its children's.
  virtual void collect(std::vector<std::pair<std::string, ParameterPtr>>& out, const std::string& prefix) const;
  bool training_ = true;
  friend class Sequential;
};
using ModulePtr = std::shared_ptr<Module>;

// A layer with a weight and an optional bias (Linear, TiedLinear, Conv2d).
class SEISOKU_API WeightedModule : public Module {
 public:
  ParameterPtr weight, bias;

 protected:
  void collect(std::vector<std::pair<std::string, ParameterPtr>>& out, const std::string& prefix) const override;
};

struct LinearOptions {
  bool bias = true;
  Activation activation = Activation::identity;
  double slope = 0.01;      // leaky_relu
  double dropout = 0.0;     // on the outputs, in training
  bool inverted = true;     // inverted dropout; false: the lecture's "scale at evaluation"
  DType dtype = DType::float32;
  Device device = Device::cpu;
};

// y = dropout(act(x W^T + b)) with the epilogue fused; weight (out, in).
class SEISOKU_API Linear : public WeightedModule {
 public:
  // He init for relu-family activations, Glorot otherwise; `shared_weight` reuses a parameter.
  Linear(std::int64_t in_features, std::int64_t out_features, const LinearOptions& options,
         std::shared_ptr<Generator> generator, ParameterPtr shared_weight = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const LinearOptions& options() const { return options_; }

 private:
  Epilogue epilogue() const;  // of the last forward
  LinearOptions options_;
  std::shared_ptr<Generator> gen_;
  Tensor x_, y_;
  double p_ = 0.0, scale_ = 1.0, eval_factor_ = 1.0;
  std::uint64_t offset_ = 0;
};

// A decoder layer using another Linear's weight transposed: y = act(x W + b).
class SEISOKU_API TiedLinear : public WeightedModule {
 public:
  TiedLinear(const std::shared_ptr<Linear>& source, bool bias, Activation activation);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;

 private:
  Activation activation_;
  Tensor x_, y_;
};

class SEISOKU_API ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation activation, double slope = 0.01) : activation_(activation), slope_(slope) {}
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;

 private:
  Activation activation_;
  double slope_;
  Tensor y_;
};

// Inverted dropout (or the lecture's variant with inverted = false).
class SEISOKU_API Dropout : public Module {
 public:
  Dropout(double p, std::shared_ptr<Generator> generator, bool inverted = true);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;

 private:
  double p_;
  bool inverted_;
  std::shared_ptr<Generator> gen_;
  std::uint64_t offset_ = 0;
  bool masked_ = false;
};

// Adds N(0, std^2) in training; the identity at evaluation.
class SEISOKU_API GaussianNoise : public Module {
 public:
  GaussianNoise(double stddev, std::shared_ptr<Generator> generator);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;

 private:
  double stddev_;
  std::shared_ptr<Generator> gen_;
};

// Window of a convolution or pooling layer: kernel, stride and padding as (h, w).
struct Window {
  std::int64_t kh, kw;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
};

// 2-D convolution over NCHW; weight (out, in, kh, kw), He init; `shared_weight` shares filters.
class SEISOKU_API Conv2d : public WeightedModule {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, const Window& window, bool bias,
         std::shared_ptr<Generator> generator, DType dtype = DType::float32, Device device = Device::cpu,
         ParameterPtr shared_weight = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;

 private:
  Window window_;
  Tensor x_;
};

class SEISOKU_API MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Window& window) : window_(window) {}
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;

 private:
  Window window_;
  Tensor indices_;
  Shape shape_;
};

class SEISOKU_API AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Window& window, bool count_include_pad = true)
      : window_(window), count_include_pad_(count_include_pad) {}
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;

 private:
  Window window_;
  bool count_include_pad_;
  Tensor x_;
};

// (N, ...) -> (N, prod(...)).
class SEISOKU_API Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;

 private:
  Shape shape_;
};

class SEISOKU_API Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> modules) : modules_(std::move(modules)) {}
  Sequential& add(ModulePtr module);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  void train(bool mode = true) override;
  const std::vector<ModulePtr>& modules() const { return modules_; }

 protected:
  void collect(std::vector<std::pair<std::string, ParameterPtr>>& out, const std::string& prefix) const override;

 private:
  std::vector<ModulePtr> modules_;
};

}  // namespace seisoku::nn
