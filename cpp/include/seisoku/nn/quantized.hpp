#pragma once
// int8 layers: inference layers that run int8 x int8 -> int32 products with a fused
// rescale / bias / ReLU epilogue (QuantizedLinear, QuantizedConv2d), and the layers of
// quantization-aware training (FakeQuantize on activations, QATLinear with fake-quantized weights),
// whose straight-through gradients let a model be fine-tuned before it is converted. See
// seisoku/int8.hpp for the number format.
#include <cstdint>
#include <memory>

#include "seisoku/int8.hpp"
#include "seisoku/nn/layers.hpp"
#include "seisoku/nn/module.hpp"

namespace seisoku::nn {

// How a quantized layer quantizes its input: with a fixed scale from calibration (static,
// input_scale > 0) or with max|x| / 127 of each batch (dynamic, input_scale = 0).
struct QuantizedOptions {
  Activation activation = Activation::identity;  // identity or relu, fused into the epilogue
  double input_scale = 0.0;   // > 0: static input scale; 0: each batch's max|x| / 127
  double output_scale = 0.0;  // > 0 (QuantizedLinear): y is int8 codes at this scale
};

// y = act(dequantize(quantize(x) @ Wq^T) + b): x float32 (N, in) on the CPU or CUDA, y float32
// (N, out). With a static input scale, x may also be int8 codes at that scale (the output of an
// int8 layer before it), used as they are; with output_scale > 0, y is int8 codes at that scale
// (Int8Epilogue::output_scale), for the next int8 layer. Inference only (backward throws).
class SEISOKU_API QuantizedLinear : public Module {
 public:
  // bias: float32 (out,) on the CPU, or undefined.
  QuantizedLinear(Int8Weight weight, Tensor bias, const QuantizedOptions& options = {});
  // From a trained Linear (its weight per output row or per tensor, its bias; its activation
  // when that is identity or relu unless options name one).
  static std::shared_ptr<QuantizedLinear> from_linear(const Linear& linear, bool per_channel,
                                                      const QuantizedOptions& options = {});
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "QuantizedLinear"; }

  const Int8Weight& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const QuantizedOptions& options() const { return options_; }
  std::int64_t in_features() const { return weight_.in_features(); }
  std::int64_t out_features() const { return weight_.out_features(); }
  // The scale used by the last forward (static or the batch's).
  double last_input_scale() const { return last_scale_; }
  // Bytes of the stored model: int8 codes, float32 scales and bias.
  std::int64_t nbytes() const { return weight_.nbytes() + (bias_.defined() ? 4 * bias_.numel() : 0); }

 private:
  Int8Weight weight_;
  Tensor bias_;
  mutable Tensor dev_bias_;
  QuantizedOptions options_;
  double last_scale_ = 0.0;
};

// 2-D convolution over NCHW float32 inputs (CPU or CUDA) with int8 filters: the input quantized,
// unfolded (int8_im2col) to int8 rows and multiplied by the int8 GEMM (int8_linear, epilogue
// fused), then laid out as NCHW (int8_rows_to_nchw). Inference only.
class SEISOKU_API QuantizedConv2d : public Module {
 public:
  // weight: Int8Weight of the filters flattened to (out, in * kh * kw).
  QuantizedConv2d(Int8Weight weight, Tensor bias, std::int64_t in_channels, const Window& window,
                  const QuantizedOptions& options = {});
  static std::shared_ptr<QuantizedConv2d> from_conv2d(const Conv2d& conv, bool per_channel,
                                                      const QuantizedOptions& options = {});
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "QuantizedConv2d"; }

  const Int8Weight& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const QuantizedOptions& options() const { return options_; }
  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return weight_.out_features(); }
  const Window& window() const { return window_; }
  double last_input_scale() const { return last_scale_; }
  std::int64_t nbytes() const { return weight_.nbytes() + (bias_.defined() ? 4 * bias_.numel() : 0); }

 private:
  Int8Weight weight_;
  Tensor bias_;
  mutable Tensor dev_bias_;
  std::int64_t in_;
  Window window_;
  QuantizedOptions options_;
  double last_scale_ = 0.0;
};

// Fake quantization of activations for quantization-aware training: y = q(x) * s with
// s = int8_scale_of(observed max|x|). In training each forward updates the observed maximum (the
// first batch's max|x|, then an exponential moving average with `momentum`) unless the scale is
// fixed; at evaluation the observed scale is used as it is. Backward: the straight-through
// estimator, gradient passed where x was not clipped, 0 where it was.
class SEISOKU_API FakeQuantize : public Module {
 public:
  explicit FakeQuantize(double momentum = 0.1, double scale = 0.0);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "FakeQuantize"; }

  double momentum() const { return momentum_; }
  // The observed max|x| (0 before any observation) and the scale it gives.
  double observed_max() const { return observed_; }
  double scale() const { return fixed_ > 0 ? fixed_ : int8_scale_of(observed_); }
  bool fixed() const { return fixed_ > 0; }
  void set_observed_max(double max_abs);
  void set_scale(double scale);  // > 0 fixes the scale; 0 returns to observing

 protected:
  void release_own_buffers() override { x_ = Tensor(); }

 private:
  double momentum_, fixed_, observed_ = 0.0;
  bool seen_ = false;
  Tensor x_, scales_;
};

// A Linear trained through fake-quantized weights: y = act(x Wq^T + b), Wq the weight fake-quantized
// per output row (or per tensor) with the scale max|w| / 127 of the current weight, so no weight is
// clipped and the straight-through gradient reaches every weight. Shares weight and bias
// Parameters with the Linear it was made from.
class SEISOKU_API QATLinear : public Module {
 public:
  QATLinear(ParameterPtr weight, ParameterPtr bias, Activation activation = Activation::identity,
            bool per_channel = true);
  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "QATLinear"; }

  const ParameterPtr& weight() const { return weight_; }
  const ParameterPtr& bias() const { return bias_; }
  Activation activation() const { return activation_; }
  bool per_channel() const { return per_channel_; }

 protected:
  void release_own_buffers() override;

 private:
  ParameterPtr weight_, bias_;
  Activation activation_;
  bool per_channel_;
  Tensor x_, y_, wq_, scales_;
};

}  // namespace seisoku::nn
