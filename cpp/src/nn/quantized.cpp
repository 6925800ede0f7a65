// int8 layers (seisoku/nn/quantized.hpp): QuantizedLinear and QuantizedConv2d over the int8 GEMM,
// FakeQuantize and QATLinear for quantization-aware training.
#include "seisoku/nn/quantized.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/check.hpp"
#include "nn/common.hpp"
#include "seisoku/linear.hpp"

namespace seisoku::nn {
namespace {

enum Buffer : std::size_t { kXq, kY, kCols, kZ, kGradX, kGradZ, kWq };

void check_options(const char* op, const QuantizedOptions& o) {
  if (o.activation != Activation::identity && o.activation != Activation::relu)
    detail::fail(op, std::string("argument 'activation' must be identity or relu, got ") +
                         activation_name(o.activation));
  if (!(std::isfinite(o.input_scale) && o.input_scale >= 0.0))
    detail::fail(op, "argument 'input_scale' must be finite and >= 0 (0: dynamic), got " + number(o.input_scale));
  if (!(std::isfinite(o.output_scale) && o.output_scale >= 0.0))
    detail::fail(op, "argument 'output_scale' must be finite and >= 0 (0: float32 output), got " +
                         number(o.output_scale));
}

Tensor host_bias(const char* op, const Tensor& bias, std::int64_t out) {
  if (!bias.defined()) return bias;
  detail::check_dtype(op, "bias", bias, {DType::float32, DType::float64});
  if (bias.numel() != out)
    detail::fail(op, "argument 'bias' must have " + std::to_string(out) + " elements, got shape " +
                         shape_str(bias.shape()));
  const Tensor h = bias.to(Device::cpu);
  if (h.dtype() == DType::float32) return h.reshape({out});
  Tensor f = Tensor::empty({out}, DType::float32);
  for (std::int64_t i = 0; i < out; ++i) f.data_as<float>()[i] = static_cast<float>(h.data_as<double>()[i]);
  return f;
}

// The activation a float layer hands to its quantized form: the options' unless identity, then the
// layer's own when the epilogue can fuse it.
Activation fused_activation(const char* op, Activation layer, const QuantizedOptions& o) {
  if (o.activation != Activation::identity) return o.activation;
  if (layer == Activation::identity || layer == Activation::relu) return layer;
  detail::fail(op, std::string("a layer with activation ") + activation_name(layer) +
                       " cannot be quantized (the int8 epilogue fuses identity or relu)");
}

// The input scale of a forward: the static one, or max|x| / 127 of this batch.
double input_scale(const char* op, const QuantizedOptions& o, const Tensor& x) {
  if (o.input_scale > 0) return o.input_scale;
  return int8_scale_of(int8_max_abs(x, op));
}

Tensor float_weight(const ParameterPtr& p) {
  const Tensor& v = p->value();
  return v.is_cuda() ? v.to(Device::cpu) : v;
}

}  // namespace

// ---- QuantizedLinear ----

QuantizedLinear::QuantizedLinear(Int8Weight weight, Tensor bias, const QuantizedOptions& options)
    : weight_(std::move(weight)), options_(options) {
  const char* op = "QuantizedLinear";
  if (!weight_.defined()) detail::fail(op, "argument 'weight' is an empty Int8Weight");
  check_options(op, options);
  bias_ = host_bias(op, bias, weight_.out_features());
}

std::shared_ptr<QuantizedLinear> QuantizedLinear::from_linear(const Linear& linear, bool per_channel,
                                                              const QuantizedOptions& options) {
  const char* op = "QuantizedLinear";
  if (linear.options().dropout > 0 && linear.options().dropout_mode == DropoutMode::lecture)
    detail::fail(op, "a Linear with lecture-mode dropout scales its output at evaluation; quantize it after "
                     "folding the factor into its weights");
  QuantizedOptions o = options;
  o.activation = fused_activation(op, linear.options().activation, options);
  const Int8Weight w = Int8Weight::quantize(float_weight(linear.weight()), per_channel);
  return std::make_shared<QuantizedLinear>(w, linear.bias() ? linear.bias()->value() : Tensor(), o);
}

Tensor QuantizedLinear::forward(const Tensor& x) {
  const char* op = "QuantizedLinear";
  detail::check_defined(op, "x", x);
  detail::check_dtype(op, "x", x, {DType::float32, DType::int8});
  if (x.dim() != 2 || x.shape()[1] != in_features())
    detail::fail(op, "argument 'x' must have shape (N, " + std::to_string(in_features()) + "), got " +
                         shape_str(x.shape()));
  const bool codes = x.dtype() == DType::int8;
  if (codes && !(options_.input_scale > 0))
    detail::fail(op, "argument 'x' is int8 codes, which need a static input_scale (> 0), got a dynamic scale");
  const double s = codes ? options_.input_scale : input_scale(op, options_, x);
  Tensor xq = x;
  if (!codes) {
    xq = buffers_.get(kXq, x.shape(), DType::int8, x.device(), x.device_index());
    quantize_int8(x, xq, s);
  }
  const bool requantize = options_.output_scale > 0;
  Tensor y = buffers_.get(kY, {x.shape()[0], out_features()}, requantize ? DType::int8 : DType::float32, x.device(),
                          x.device_index());
  Tensor b = bias_;
  if (b.defined() && x.is_cuda()) {
    if (!dev_bias_.defined() || dev_bias_.device_index() != x.device_index())
      dev_bias_ = bias_.to(Device::cuda, x.device_index());
    b = dev_bias_;
  }
  Int8Epilogue e;
  e.activation = options_.activation;
  e.output_scale = options_.output_scale;
  int8_linear(xq, s, weight_, b, y, e);
  last_scale_ = s;
  return y;
}

Tensor QuantizedLinear::backward(const Tensor&, bool) {
  detail::fail("QuantizedLinear", "is inference-only (train the float model, or a QAT model, then quantize)");
}

// ---- QuantizedConv2d ----

QuantizedConv2d::QuantizedConv2d(Int8Weight weight, Tensor bias, std::int64_t in_channels, const Window& window,
                                 const QuantizedOptions& options)
    : weight_(std::move(weight)), in_(in_channels), window_(window), options_(options) {
  const char* op = "QuantizedConv2d";
  if (!weight_.defined()) detail::fail(op, "argument 'weight' is an empty Int8Weight");
  check_options(op, options);
  if (options.output_scale > 0)
    detail::fail(op, "argument 'output_scale' must be 0: a QuantizedConv2d writes float32 outputs, got " +
                         number(options.output_scale));
  check_positive(op, "in_channels", in_channels);
  if (window.kh < 1 || window.kw < 1 || window.stride_h < 1 || window.stride_w < 1 || window.pad_h < 0 ||
      window.pad_w < 0)
    detail::fail(op, "argument 'window' must have kernel and stride >= 1 and padding >= 0");
  if (weight_.in_features() != in_channels * window.kh * window.kw)
    detail::fail(op, "argument 'weight' must have in_channels * kh * kw = " +
                         std::to_string(in_channels * window.kh * window.kw) + " columns, got " +
                         std::to_string(weight_.in_features()));
  bias_ = host_bias(op, bias, weight_.out_features());
}

std::shared_ptr<QuantizedConv2d> QuantizedConv2d::from_conv2d(const Conv2d& conv, bool per_channel,
                                                              const QuantizedOptions& options) {
  const Tensor w = float_weight(conv.weight());
  const Tensor flat = w.reshape({w.shape()[0], w.numel() / w.shape()[0]});
  return std::make_shared<QuantizedConv2d>(Int8Weight::quantize(flat, per_channel),
                                           conv.bias() ? conv.bias()->value() : Tensor(), conv.in_channels(),
                                           conv.window(), options);
}

Tensor QuantizedConv2d::forward(const Tensor& x) {
  const char* op = "QuantizedConv2d";
  detail::check_defined(op, "x", x);
  detail::check_dtype(op, "x", x, {DType::float32});
  if (x.dim() != 4 || x.shape()[1] != in_)
    detail::fail(op, "argument 'x' must have shape (N, " + std::to_string(in_) + ", H, W), got " +
                         shape_str(x.shape()));
  const Window& w = window_;
  const std::int64_t N = x.shape()[0], H = x.shape()[2], W = x.shape()[3];
  if (H + 2 * w.pad_h < w.kh || W + 2 * w.pad_w < w.kw)
    detail::fail(op, "argument 'x' is smaller than the kernel: shape " + shape_str(x.shape()));
  const std::int64_t OH = (H + 2 * w.pad_h - w.kh) / w.stride_h + 1, OW = (W + 2 * w.pad_w - w.kw) / w.stride_w + 1;
  const double s = input_scale(op, options_, x);
  const Device dev = x.device();
  const int index = x.device_index();
  Tensor xq = buffers_.get(kXq, x.shape(), DType::int8, dev, index);
  quantize_int8(x, xq, s);
  const std::int64_t P = OH * OW, O = out_channels();
  Tensor cols = buffers_.get(kCols, {N * P, in_ * w.kh * w.kw}, DType::int8, dev, index);
  int8_im2col(xq, cols, w.kh, w.kw, w.stride_h, w.stride_w, w.pad_h, w.pad_w);
  Tensor z = buffers_.get(kZ, {N * P, O}, DType::float32, dev, index);
  Tensor b = bias_;
  if (b.defined() && x.is_cuda()) {
    if (!dev_bias_.defined() || dev_bias_.device_index() != index) dev_bias_ = bias_.to(Device::cuda, index);
    b = dev_bias_;
  }
  Int8Epilogue e;
  e.activation = options_.activation;
  int8_linear(cols, s, weight_, b, z, e);
  Tensor y = buffers_.like(kY, {N, O, OH, OW}, x);
  int8_rows_to_nchw(z, y);
  last_scale_ = s;
  return y;
}

Tensor QuantizedConv2d::backward(const Tensor&, bool) {
  detail::fail("QuantizedConv2d", "is inference-only (train the float model, then quantize)");
}

// ---- FakeQuantize ----

FakeQuantize::FakeQuantize(double momentum, double scale) : momentum_(momentum), fixed_(0.0) {
  if (!(momentum > 0.0 && momentum <= 1.0))
    detail::fail("FakeQuantize", "argument 'momentum' must be in (0, 1], got " + number(momentum));
  set_scale(scale);
}

void FakeQuantize::set_observed_max(double max_abs) {
  if (!(std::isfinite(max_abs) && max_abs >= 0.0))
    detail::fail("FakeQuantize", "argument 'observed_max' must be finite and >= 0, got " + number(max_abs));
  observed_ = max_abs;
  seen_ = true;
}

void FakeQuantize::set_scale(double scale) {
  if (!(std::isfinite(scale) && scale >= 0.0))
    detail::fail("FakeQuantize", "argument 'scale' must be finite and >= 0 (0: observed), got " + number(scale));
  fixed_ = scale;
}

Tensor FakeQuantize::forward(const Tensor& x) {
  const char* op = "FakeQuantize";
  detail::check_defined(op, "x", x);
  detail::check_dtype(op, "x", x, {DType::float32});
  if (training_ && fixed_ == 0.0) {
    const double m = int8_max_abs(x, op);
    observed_ = seen_ ? (1.0 - momentum_) * observed_ + momentum_ * m : m;
    seen_ = true;
  }
  Tensor scales = Tensor::empty({1}, DType::float32);
  *scales.data_as<float>() = static_cast<float>(scale());
  if (x.is_cuda()) scales = scales.to(Device::cuda, x.device_index());
  Tensor y = buffers_.like(kY, x.shape(), x);
  fake_quantize_int8(x, scales, y);
  x_ = x;
  scales_ = scales;
  return y;
}

Tensor FakeQuantize::backward(const Tensor& grad, bool need_input_grad) {
  if (!x_.defined()) detail::fail("FakeQuantize", "backward needs a forward first");
  if (!need_input_grad) return Tensor();
  Tensor gx = buffers_.like(kGradX, x_.shape(), x_);
  fake_quantize_int8_backward(grad, x_, scales_, gx);
  return gx;
}

// ---- QATLinear ----

QATLinear::QATLinear(ParameterPtr weight, ParameterPtr bias, Activation activation, bool per_channel)
    : weight_(std::move(weight)), bias_(std::move(bias)), activation_(activation), per_channel_(per_channel) {
  const char* op = "QATLinear";
  if (!weight_) detail::fail(op, "argument 'weight' is missing");
  const Tensor& w = weight_->value();
  if (w.dim() != 2 || w.dtype() != DType::float32)
    detail::fail(op, "argument 'weight' must be a float32 (out, in) Parameter, got " + w.describe());
  if (bias_) check_weight(op, bias_, {w.shape()[0]}, "bias");
  if (activation != Activation::identity && activation != Activation::relu)
    detail::fail(op, std::string("argument 'activation' must be identity or relu, got ") + activation_name(activation));
  register_parameter("weight", weight_, false);
  if (bias_) register_parameter("bias", bias_, false);
}

Tensor QATLinear::forward(const Tensor& x) {
  const Tensor& w = weight_->value();
  const std::int64_t O = w.shape()[0], K = w.shape()[1];
  const char* op = "QATLinear";
  detail::check_defined(op, "x", x);
  if (x.dim() != 2 || x.shape()[1] != K)
    detail::fail(op, "argument 'x' must have shape (N, " + std::to_string(K) + "), got " + shape_str(x.shape()));
  // Scales from the current weight (on the host: O maxima).
  const Tensor host = float_weight(weight_);
  Tensor scales = Tensor::empty({per_channel_ ? O : 1}, DType::float32);
  float* s = scales.data_as<float>();
  const float* v = host.data_as<float>();
  for (std::int64_t r = 0; r < (per_channel_ ? O : 1); ++r) {
    const std::int64_t n = per_channel_ ? K : O * K;
    float m = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(v[r * K + i]));
    if (!std::isfinite(m)) detail::fail(op, "the weight must be finite, got a NaN or infinite value in row " +
                                                std::to_string(r));
    s[r] = int8_scale_of(m);
  }
  if (w.is_cuda()) scales = scales.to(Device::cuda, w.device_index());
  Tensor wq = buffers_.like(kWq, w.shape(), w);
  fake_quantize_int8(w, scales, wq);
  Tensor y = buffers_.like(kY, {x.shape()[0], O}, x);
  Epilogue e;
  e.activation = activation_;
  linear(x, wq, bias_ ? bias_->value() : Tensor(), y, e);
  x_ = x;
  y_ = y;
  wq_ = wq;
  scales_ = scales;
  return y;
}

Tensor QATLinear::backward(const Tensor& grad, bool need_input_grad) {
  if (!y_.defined()) detail::fail("QATLinear", "backward needs a forward first");
  Tensor grad_z = grad;
  Epilogue e;
  e.activation = activation_;
  if (activation_ != Activation::identity) {
    grad_z = buffers_.like(kGradZ, y_.shape(), y_);
    bias_act_dropout_backward(grad, y_, grad_z, e);
  }
  Tensor grad_x = need_input_grad ? buffers_.like(kGradX, x_.shape(), x_) : Tensor();
  // The straight-through estimator: d loss / d W = d loss / d Wq (no weight is clipped).
  GradWrite write({weight_.get(), bias_.get()});
  linear_backward(grad_z, x_, wq_, grad_x, weight_->grad_memory(), bias_ ? bias_->grad_memory() : Tensor(),
                  write.accumulate());
  write.commit();
  return grad_x;
}

void QATLinear::release_own_buffers() {
  x_ = Tensor();
  y_ = Tensor();
  wq_ = Tensor();
}

}  // namespace seisoku::nn
