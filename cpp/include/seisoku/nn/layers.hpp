#pragma once
// The layers of seisoku::nn. Every one runs on the CPU and on CUDA (the device of its parameters
// and inputs); Python's seisoku.nn classes of the same names are these classes.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "seisoku/activation.hpp"
#include "seisoku/linear.hpp"
#include "seisoku/nn/module.hpp"
#include "seisoku/random.hpp"

namespace seisoku::nn {

// Dropout variants: inverted (kept units scaled by 1 / (1 - p) in training, the identity at
// evaluation) or the lecture's (no scaling in training, outputs times (1 - p) at evaluation).
enum class DropoutMode : std::uint8_t { inverted, lecture };
SEISOKU_API const char* dropout_mode_name(DropoutMode mode);
// Parses "inverted" or "lecture"; throws std::invalid_argument naming op and argument otherwise.
SEISOKU_API DropoutMode dropout_mode_from_name(const std::string& name, const char* op = "Dropout",
                                               const char* argument = "mode");

// ---- fully connected layers ----

struct LinearOptions {
  bool bias = true;  // a new zero bias (unless one is passed to share)
  Activation activation = Activation::identity;
  double slope = 0.01;   // leaky_relu negative slope
  double dropout = 0.0;  // probability of dropping an output unit in training, in [0, 1)
  DropoutMode dropout_mode = DropoutMode::inverted;
  Init init = Init::automatic;
  DType dtype = DType::float32;  // of new parameters
  Device device = Device::cpu;
  int device_index = 0;
};

// y = dropout(act(x W^T + b)) with the epilogue fused into one pass over the output; weight
// (out_features, in_features). On the CPU a product whose left operand is mostly zeros (the input,
// or the gradient behind the epilogue) multiplies its nonzeros only where a cost model of the
// shape says that beats the dense product (see seisoku/linear.hpp).
class SEISOKU_API Linear : public Module {
 public:
  // weight / bias: existing parameters to share (shapes must match); otherwise new ones, the
  // weight initialised from `generator` (null: the process-wide generator).
  Linear(std::int64_t in_features, std::int64_t out_features, const LinearOptions& options = {},
         std::shared_ptr<Generator> generator = nullptr, ParameterPtr weight = nullptr, ParameterPtr bias = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "Linear"; }

  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  const LinearOptions& options() const { return options_; }
  const ParameterPtr& weight() const { return weight_; }
  const ParameterPtr& bias() const { return bias_; }
  void set_weight(ParameterPtr weight);
  void set_bias(ParameterPtr bias);  // null: no bias
  const std::shared_ptr<Generator>& generator() const { return gen_; }
  void set_generator(std::shared_ptr<Generator> generator) { gen_ = std::move(generator); }
  // The row of the whole batch that the input's row 0 is (default 0): the dropout mask of row i
  // is that of row first_row + i of the batch, so processes that each take rows [r, r + n) of a
  // batch (data parallel training) draw together the mask of the whole batch.
  std::uint64_t first_row() const { return first_row_; }
  void set_first_row(std::uint64_t row) { first_row_ = row; }

 protected:
  void release_own_buffers() override;

 private:
  std::int64_t in_, out_;
  std::uint64_t first_row_ = 0;
  LinearOptions options_;
  std::shared_ptr<Generator> gen_;
  ParameterPtr weight_, bias_;
  Tensor x_, y_;
  Epilogue epilogue_;  // of the last forward
  double eval_factor_ = 1.0;
};

// A decoder layer using another Linear's weight transposed: y = act(x W + b); the weight is the
// same Parameter (both uses add into its gradient), the bias its own.
class SEISOKU_API TiedLinear : public Module {
 public:
  TiedLinear(std::shared_ptr<Linear> source, bool bias = true, Activation activation = Activation::identity,
             double slope = 0.01, ParameterPtr bias_parameter = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "TiedLinear"; }

  const std::shared_ptr<Linear>& source() const { return source_; }
  const ParameterPtr& weight() const { return weight_; }
  const ParameterPtr& bias() const { return bias_; }
  Activation activation() const { return activation_; }
  double slope() const { return slope_; }

 protected:
  void release_own_buffers() override;

 private:
  std::shared_ptr<Linear> source_;
  ParameterPtr weight_, bias_;
  Activation activation_;
  double slope_;
  Tensor x_, y_;
};

// Evaluation rule of DropConnect: the expected weights (1 - p) W, or the moment-matched Gaussian
// of the pre-activation averaged over `samples` draws (Wan et al. 2013), drawn from a stream of
// their own (the generator's seed at offset 2^63): evaluation is deterministic and leaves the
// generator, and so the training masks, as they were.
enum class DropConnectInference : std::uint8_t { mean, gaussian };
SEISOKU_API const char* inference_name(DropConnectInference inference);
SEISOKU_API DropConnectInference inference_from_name(const std::string& name);  // "mean", "gaussian"

struct DropConnectOptions {
  double p = 0.5;  // probability of dropping a weight in training, in [0, 1)
  bool bias = true;
  Activation activation = Activation::identity;
  double slope = 0.01;
  DropConnectInference inference = DropConnectInference::mean;
  std::int64_t samples = 64;  // draws of the Gaussian inference
  Init init = Init::automatic;
  DType dtype = DType::float32;
  Device device = Device::cpu;
  int device_index = 0;
};

// A Linear whose weights are masked per mini-batch in training: y = act(x (W * M)^T + b), M ~
// Bernoulli(1 - p) drawn once per forward for the whole batch (no rescaling).
class SEISOKU_API DropConnect : public Module {
 public:
  DropConnect(std::int64_t in_features, std::int64_t out_features, const DropConnectOptions& options = {},
              std::shared_ptr<Generator> generator = nullptr, ParameterPtr weight = nullptr,
              ParameterPtr bias = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "DropConnect"; }

  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  const DropConnectOptions& options() const { return options_; }
  // The evaluation rule and its number of draws may change between evaluations.
  void set_inference(DropConnectInference inference) { options_.inference = inference; }
  void set_samples(std::int64_t samples);
  const ParameterPtr& weight() const { return weight_; }
  const ParameterPtr& bias() const { return bias_; }
  const std::shared_ptr<Generator>& generator() const { return gen_; }
  void set_generator(std::shared_ptr<Generator> generator) { gen_ = std::move(generator); }

 protected:
  void release_own_buffers() override;

 private:
  std::int64_t in_, out_;
  DropConnectOptions options_;
  std::shared_ptr<Generator> gen_;
  ParameterPtr weight_, bias_;
  Tensor x_, y_, masked_;  // training forward: the input, the output and W * M
  std::uint64_t seed_ = 0, offset_ = 0;
  bool trained_forward_ = false;
};

// ---- convolution and pooling over NCHW ----

// Window of a convolution or pooling layer: kernel, stride and zero padding as (h, w), in pixels.
struct Window {
  std::int64_t kh, kw;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
};

struct Conv2dOptions {
  bool bias = true;
  Init init = Init::he;
  DType dtype = DType::float32;
  Device device = Device::cpu;
  int device_index = 0;
};

// 2-D convolution (cross-correlation) over NCHW; weight (out, in, kh, kw). Passing a weight shares
// filters between layers (parameter sharing).
class SEISOKU_API Conv2d : public Module {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, const Window& window, const Conv2dOptions& options = {},
         std::shared_ptr<Generator> generator = nullptr, ParameterPtr weight = nullptr, ParameterPtr bias = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "Conv2d"; }

  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }
  const Window& window() const { return window_; }
  const Conv2dOptions& options() const { return options_; }
  const ParameterPtr& weight() const { return weight_; }
  const ParameterPtr& bias() const { return bias_; }
  void set_weight(ParameterPtr weight);
  void set_bias(ParameterPtr bias);

 protected:
  void release_own_buffers() override;

 private:
  std::int64_t in_, out_;
  Window window_;
  Conv2dOptions options_;
  ParameterPtr weight_, bias_;
  Tensor x_;
};

class SEISOKU_API MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Window& window);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "MaxPool2d"; }
  const Window& window() const { return window_; }

 protected:
  void release_own_buffers() override;

 private:
  Window window_;
  Tensor indices_;
  Shape shape_;
};

class SEISOKU_API AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Window& window, bool count_include_pad = true);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "AvgPool2d"; }
  const Window& window() const { return window_; }
  bool count_include_pad() const { return count_include_pad_; }

 private:
  Window window_;
  bool count_include_pad_;
  Shape shape_;
};

// (N, ...) -> (N, prod(...)), a view.
class SEISOKU_API Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "Flatten"; }

 private:
  Shape shape_;
};

// ---- elementwise layers ----

// An activation; backward uses the stored output.
class SEISOKU_API ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation activation, double slope = 0.01);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override;
  Activation activation() const { return activation_; }
  double slope() const { return slope_; }

 protected:
  void release_own_buffers() override { y_ = Tensor(); }

 private:
  Activation activation_;
  double slope_;
  Tensor y_;
};

class SEISOKU_API Identity : public ActivationLayer {
 public:
  Identity() : ActivationLayer(Activation::identity) {}
};
class SEISOKU_API ReLU : public ActivationLayer {
 public:
  ReLU() : ActivationLayer(Activation::relu) {}
};
class SEISOKU_API LeakyReLU : public ActivationLayer {
 public:
  explicit LeakyReLU(double slope = 0.01) : ActivationLayer(Activation::leaky_relu, slope) {}
};
class SEISOKU_API Tanh : public ActivationLayer {
 public:
  Tanh() : ActivationLayer(Activation::tanh) {}
};
class SEISOKU_API Sigmoid : public ActivationLayer {
 public:
  Sigmoid() : ActivationLayer(Activation::sigmoid) {}
};

// Softmax over the last axis.
class SEISOKU_API Softmax : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "Softmax"; }

 protected:
  void release_own_buffers() override { y_ = Tensor(); }

 private:
  Tensor y_;
};

// Drops units with probability p in training (see DropoutMode); the mask is drawn again in
// backward from the forward's Philox offset, never stored.
class SEISOKU_API Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, DropoutMode mode = DropoutMode::inverted,
                   std::shared_ptr<Generator> generator = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "Dropout"; }
  double p() const { return p_; }
  DropoutMode mode() const { return mode_; }
  const std::shared_ptr<Generator>& generator() const { return gen_; }
  void set_generator(std::shared_ptr<Generator> generator) { gen_ = std::move(generator); }
  // The row of the whole batch that the input's row 0 is (default 0): the dropout mask of row i
  // is that of row first_row + i of the batch, so processes that each take rows [r, r + n) of a
  // batch (data parallel training) draw together the mask of the whole batch.
  std::uint64_t first_row() const { return first_row_; }
  void set_first_row(std::uint64_t row) { first_row_ = row; }

 private:
  double p_;
  DropoutMode mode_;
  std::shared_ptr<Generator> gen_;
  std::uint64_t first_row_ = 0;
  std::uint64_t seed_ = 0, offset_ = 0, first_ = 0;
  bool masked_ = false;
  double factor_ = 1.0;  // scale of the last forward without a mask
  std::optional<Shape> shape_;  // of the last forward's input
};

// Adds N(0, std^2) in training (noise injection on inputs, noise robustness on hidden units);
// the identity at evaluation.
class SEISOKU_API GaussianNoise : public Module {
 public:
  explicit GaussianNoise(double stddev, std::shared_ptr<Generator> generator = nullptr);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "GaussianNoise"; }
  double stddev() const { return std_; }
  const std::shared_ptr<Generator>& generator() const { return gen_; }
  void set_generator(std::shared_ptr<Generator> generator) { gen_ = std::move(generator); }

 private:
  double std_;
  std::shared_ptr<Generator> gen_;
  std::optional<Shape> shape_;  // of the last forward's input
};

// ---- regularizers ----

// The identity in forward; backward adds the gradient of an activity penalty on its input,
// lam / N sum |x| (ord 1: sparse representations) or lam / N sum x^2 (ord 2), and records its
// value (see Module::penalty). The value is read (a device synchronisation on CUDA) only when
// asked for.
class SEISOKU_API ActivityRegularization : public Module {
 public:
  explicit ActivityRegularization(double lam, int ord = 1);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "ActivityRegularization"; }
  double lam() const { return lam_; }
  int ord() const { return ord_; }

 protected:
  double own_penalty() const override;
  void release_own_buffers() override { x_ = Tensor(); }

 private:
  double lam_;
  int ord_;
  Tensor x_, value_;
};

// Soft parameter tying: the penalty lam ||a - b||^2 between two parameters of one shape. Attach it
// to a model (register_module, or `model.tie = Tie(a, b, lam)` in Python); apply_penalties() adds
// its gradients and reports it. It has no forward of its own.
class SEISOKU_API Tie : public Module {
 public:
  Tie(ParameterPtr a, ParameterPtr b, double lam);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "Tie"; }
  const ParameterPtr& a() const { return a_; }
  const ParameterPtr& b() const { return b_; }
  double lam() const { return lam_; }

 protected:
  double own_penalty() const override;
  void apply_own_penalties() override;

 private:
  ParameterPtr a_, b_;
  double lam_;
  Tensor value_;  // of the last apply_penalties
};

}  // namespace seisoku::nn
