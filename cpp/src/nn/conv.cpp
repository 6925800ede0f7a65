// Convolution and pooling layers over NCHW, and Flatten.
#include <string>

#include "core/check.hpp"
#include "nn/common.hpp"
#include "seisoku/conv.hpp"
#include "seisoku/nn/layers.hpp"
#include "seisoku/pool.hpp"

namespace seisoku::nn {
namespace {

enum Buffer : std::size_t { kY, kIndices, kGradX };

void check_window(const char* op, const Window& w, bool pooling) {
  if (w.kh < 1 || w.kw < 1)
    detail::fail(op, "argument 'kernel_size' must be >= 1, got (" + std::to_string(w.kh) + ", " + std::to_string(w.kw) + ")");
  if (w.stride_h < 1 || w.stride_w < 1)
    detail::fail(op, "argument 'stride' must be >= 1, got (" + std::to_string(w.stride_h) + ", " +
                         std::to_string(w.stride_w) + ")");
  if (w.pad_h < 0 || w.pad_w < 0)
    detail::fail(op, "argument 'padding' must be >= 0, got (" + std::to_string(w.pad_h) + ", " +
                         std::to_string(w.pad_w) + ")");
  if (pooling && (2 * w.pad_h > w.kh || 2 * w.pad_w > w.kw))
    detail::fail(op, "argument 'padding' must be at most half the kernel, got (" + std::to_string(w.pad_h) + ", " +
                         std::to_string(w.pad_w) + ") for a " + std::to_string(w.kh) + "x" + std::to_string(w.kw) +
                         " kernel");
}

}  // namespace

// ---- Conv2d ----

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, const Window& window, const Conv2dOptions& options,
               std::shared_ptr<Generator> generator, ParameterPtr weight, ParameterPtr bias)
    : in_(in_channels), out_(out_channels), window_(window), options_(options) {
  check_positive("Conv2d", "in_channels", in_channels);
  check_positive("Conv2d", "out_channels", out_channels);
  check_window("Conv2d", window, false);
  const Init init = options.init == Init::automatic ? Init::he : options.init;
  set_weight(weight ? std::move(weight)
                    : new_weight({out_, in_, window.kh, window.kw}, init, Activation::relu, options.dtype,
                                 options.device, options.device_index, generator));
  if (bias || options.bias) set_bias(bias ? std::move(bias) : new_bias(out_, weight_->value()));
}

void Conv2d::set_weight(ParameterPtr weight) {
  check_weight("Conv2d", weight, {out_, in_, window_.kh, window_.kw});
  weight_ = std::move(weight);
  register_parameter("weight", weight_, false);
}

void Conv2d::set_bias(ParameterPtr bias) {
  if (bias) check_weight("Conv2d", bias, {out_}, "bias");
  bias_ = std::move(bias);
  register_parameter("bias", bias_, false);
  options_.bias = bias_ != nullptr;
}

Tensor Conv2d::forward(const Tensor& x) {
  const Shape shape = conv2d_shape(x, weight_->value(), window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w);
  Tensor y = buffers_.like(kY, shape, x);
  conv2d(x, weight_->value(), bias_ ? bias_->value() : Tensor(), y, window_.stride_h, window_.stride_w, window_.pad_h,
         window_.pad_w);
  x_ = x;
  return y;
}

Tensor Conv2d::backward(const Tensor& grad, bool need_input_grad) {
  if (!x_.defined()) detail::fail("Conv2d", "backward needs a forward first");
  Tensor grad_x = need_input_grad ? buffers_.like(kGradX, x_.shape(), x_) : Tensor();
  GradWrite write({weight_.get(), bias_.get()});
  conv2d_backward(grad, x_, weight_->value(), grad_x, weight_->grad_memory(), bias_ ? bias_->grad_memory() : Tensor(),
                  window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w, write.accumulate());
  write.commit();
  return grad_x;
}

void Conv2d::release_own_buffers() { x_ = Tensor(); }

// ---- pooling ----

MaxPool2d::MaxPool2d(const Window& window) : window_(window) { check_window("MaxPool2d", window, true); }

Tensor MaxPool2d::forward(const Tensor& x) {
  const Shape shape =
      pool2d_shape("max_pool2d", x, window_.kh, window_.kw, window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w);
  Tensor y = buffers_.like(kY, shape, x);
  Tensor indices = buffers_.get(kIndices, shape, DType::int64, x.device(), x.device_index());
  max_pool2d(x, y, indices, window_.kh, window_.kw, window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w);
  indices_ = indices;
  shape_ = x.shape();
  return y;
}

Tensor MaxPool2d::backward(const Tensor& grad, bool) {
  if (!indices_.defined()) detail::fail("MaxPool2d", "backward needs a forward first");
  Tensor grad_x = buffers_.get(kGradX, shape_, grad.dtype(), grad.device(), grad.device_index());
  max_pool2d_backward(grad, indices_, grad_x);
  return grad_x;
}

void MaxPool2d::release_own_buffers() { indices_ = Tensor(); }

AvgPool2d::AvgPool2d(const Window& window, bool count_include_pad)
    : window_(window), count_include_pad_(count_include_pad) {
  check_window("AvgPool2d", window, true);
}

Tensor AvgPool2d::forward(const Tensor& x) {
  const Shape shape =
      pool2d_shape("avg_pool2d", x, window_.kh, window_.kw, window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w);
  Tensor y = buffers_.like(kY, shape, x);
  avg_pool2d(x, y, window_.kh, window_.kw, window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w,
             count_include_pad_);
  shape_ = x.shape();
  return y;
}

Tensor AvgPool2d::backward(const Tensor& grad, bool) {
  if (shape_.empty()) detail::fail("AvgPool2d", "backward needs a forward first");
  Tensor grad_x = buffers_.get(kGradX, shape_, grad.dtype(), grad.device(), grad.device_index());
  avg_pool2d_backward(grad, grad_x, window_.kh, window_.kw, window_.stride_h, window_.stride_w, window_.pad_h,
                      window_.pad_w, count_include_pad_);
  return grad_x;
}

// ---- Flatten ----

Tensor Flatten::forward(const Tensor& x) {
  if (!x.defined() || x.dim() < 1)
    detail::fail("Flatten", "x must have a batch axis, got shape " + (x.defined() ? shape_str(x.shape()) : "none"));
  std::int64_t features = 1;
  for (std::size_t i = 1; i < x.shape().size(); ++i) features *= x.shape()[i];
  shape_ = x.shape();
  return x.reshape({x.shape()[0], features});
}

Tensor Flatten::backward(const Tensor& grad, bool) {
  if (shape_.empty()) detail::fail("Flatten", "backward needs a forward first");
  return grad.reshape(shape_);
}

}  // namespace seisoku::nn
