// Fully connected layers: Linear (fused epilogue), TiedLinear (a Linear's weight transposed) and
// DropConnect (weights masked per mini-batch; mean or Gaussian inference).
#include <cmath>
#include <string>

#include "core/check.hpp"
#include "nn/common.hpp"
#include "seisoku/blas.hpp"
#include "seisoku/dropconnect.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/mask.hpp"
#include "seisoku/nn/layers.hpp"
#include "seisoku/reduce.hpp"

namespace seisoku::nn {
namespace {

enum Buffer : std::size_t { kY, kScaled, kGradZ, kGradX, kMean, kVar, kGradMasked, kMasked, kSquaredX, kSquaredW };

Tensor output_of(BufferPool& pool, const char* op, const Tensor& x, std::int64_t features) {
  if (!x.defined()) detail::fail(op, "x is missing");
  if (x.dim() != 2) detail::fail(op, "x must be 2-D, got shape " + shape_str(x.shape()));
  return pool.like(kY, {x.shape()[0], features}, x);
}

}  // namespace

// ---- Linear ----

Linear::Linear(std::int64_t in_features, std::int64_t out_features, const LinearOptions& options,
               std::shared_ptr<Generator> generator, ParameterPtr weight, ParameterPtr bias)
    : in_(in_features), out_(out_features), options_(options), gen_(std::move(generator)) {
  check_positive("Linear", "in_features", in_features);
  check_positive("Linear", "out_features", out_features);
  check_probability("Linear", "dropout", options.dropout);
  check_slope("Linear", options.slope);
  set_weight(weight ? std::move(weight)
                    : new_weight({out_, in_}, options.init, options.activation, options.dtype, options.device,
                                 options.device_index, gen_));
  if (bias || options.bias) set_bias(bias ? std::move(bias) : new_bias(out_, weight_->value()));
  options_.bias = bias_ != nullptr;
}

void Linear::set_weight(ParameterPtr weight) {
  check_weight("Linear", weight, {out_, in_});
  weight_ = std::move(weight);
  register_parameter("weight", weight_, false);
}

void Linear::set_bias(ParameterPtr bias) {
  if (bias) check_weight("Linear", bias, {out_}, "bias");
  bias_ = std::move(bias);
  register_parameter("bias", bias_, false);
  options_.bias = bias_ != nullptr;
}

Tensor Linear::forward(const Tensor& x) {
  double factor = 1.0;
  const Epilogue e = linear_epilogue(options_.activation, options_.slope, options_.dropout, options_.dropout_mode,
                                     training_, gen_, first_row_ * static_cast<std::uint64_t>(out_), &factor);
  Tensor y = output_of(buffers_, "linear", x, out_);
  linear(x, weight_->value(), bias_ ? bias_->value() : Tensor(), y, e);
  Tensor result = eval_scaled(buffers_, kScaled, y, factor);
  // The state of this forward, kept once it has succeeded.
  x_ = x;
  y_ = y;
  epilogue_ = e;
  eval_factor_ = factor;
  return result;
}

Tensor Linear::backward(const Tensor& grad, bool need_input_grad) {
  if (!y_.defined()) detail::fail("Linear", "backward needs a forward first");
  const Tensor grad_z = epilogue_input_grad(buffers_, kScaled, kGradZ, grad, y_, epilogue_, eval_factor_);
  Tensor grad_x = need_input_grad ? buffers_.like(kGradX, x_.shape(), x_) : Tensor();
  GradWrite write({weight_.get(), bias_.get()});
  linear_backward(grad_z, x_, weight_->value(), grad_x, weight_->grad_memory(),
                  bias_ ? bias_->grad_memory() : Tensor(), write.accumulate());
  write.commit();
  return grad_x;
}

void Linear::release_own_buffers() {
  x_ = Tensor();
  y_ = Tensor();
}

// ---- TiedLinear ----

TiedLinear::TiedLinear(std::shared_ptr<Linear> source, bool bias, Activation activation, double slope,
                       ParameterPtr bias_parameter)
    : source_(std::move(source)), activation_(activation), slope_(slope) {
  if (!source_) detail::fail("TiedLinear", "argument 'source' must be a Linear, got none");
  check_slope("TiedLinear", slope);
  weight_ = source_->weight();
  register_parameter("weight", weight_, false);
  const Tensor& w = weight_->value();
  if (bias_parameter) {
    check_weight("TiedLinear", bias_parameter, {w.shape()[1]}, "bias");
    bias_ = std::move(bias_parameter);
  } else if (bias) {
    bias_ = new_bias(w.shape()[1], w);
  }
  if (bias_) register_parameter("bias", bias_, false);
}

Tensor TiedLinear::forward(const Tensor& x) {
  if (source_->weight() != weight_) {  // the source's weight was replaced: follow it
    weight_ = source_->weight();
    register_parameter("weight", weight_, false);
  }
  const Tensor& w = weight_->value();
  Tensor y = output_of(buffers_, "TiedLinear", x, w.shape()[1]);
  gemm(x, w, y);
  bias_act_dropout(y, bias_ ? bias_->value() : Tensor(), y, plain_epilogue(activation_, slope_));
  x_ = x;
  y_ = y;
  return y;
}

Tensor TiedLinear::backward(const Tensor& grad, bool need_input_grad) {
  if (!y_.defined()) detail::fail("TiedLinear", "backward needs a forward first");
  const Tensor grad_z =
      epilogue_input_grad(buffers_, kScaled, kGradZ, grad, y_, plain_epilogue(activation_, slope_), 1.0);
  GradWrite write({weight_.get(), bias_.get()});
  gemm(x_, grad_z, weight_->grad_memory(), true, false, 1.0, write.accumulate() ? 1.0 : 0.0);
  if (bias_) column_sum(grad_z, bias_->grad_memory(), write.accumulate());
  write.commit();
  if (!need_input_grad) return Tensor();
  Tensor grad_x = buffers_.like(kGradX, x_.shape(), x_);
  gemm(grad_z, weight_->value(), grad_x, false, true);
  return grad_x;
}

void TiedLinear::release_own_buffers() {
  x_ = Tensor();
  y_ = Tensor();
}

// ---- DropConnect ----

const char* inference_name(DropConnectInference inference) {
  return inference == DropConnectInference::gaussian ? "gaussian" : "mean";
}

DropConnectInference inference_from_name(const std::string& name) {
  if (name == "mean") return DropConnectInference::mean;
  if (name == "gaussian") return DropConnectInference::gaussian;
  detail::fail("DropConnect", "argument 'inference' must be 'mean' or 'gaussian', got '" + name + "'");
}

DropConnect::DropConnect(std::int64_t in_features, std::int64_t out_features, const DropConnectOptions& options,
                         std::shared_ptr<Generator> generator, ParameterPtr weight, ParameterPtr bias)
    : in_(in_features), out_(out_features), options_(options), gen_(std::move(generator)) {
  check_positive("DropConnect", "in_features", in_features);
  check_positive("DropConnect", "out_features", out_features);
  check_probability("DropConnect", "p", options.p);
  check_slope("DropConnect", options.slope);
  check_positive("DropConnect", "samples", options.samples);
  if (weight) check_weight("DropConnect", weight, {out_, in_});
  weight_ = weight ? std::move(weight)
                   : new_weight({out_, in_}, options.init, options.activation, options.dtype, options.device,
                                options.device_index, gen_);
  register_parameter("weight", weight_, false);
  if (bias) check_weight("DropConnect", bias, {out_}, "bias");
  if (bias || options.bias) {
    bias_ = bias ? std::move(bias) : new_bias(out_, weight_->value());
    register_parameter("bias", bias_, false);
  }
  options_.bias = bias_ != nullptr;
}

void DropConnect::set_samples(std::int64_t samples) {
  check_positive("DropConnect", "samples", samples);
  options_.samples = samples;
}

Tensor DropConnect::forward(const Tensor& x) {
  const Tensor& w = weight_->value();
  const Tensor b = bias_ ? bias_->value() : Tensor();
  const Epilogue e = plain_epilogue(options_.activation, options_.slope);
  Tensor y = output_of(buffers_, "DropConnect", x, out_);
  const double keep = 1.0 - options_.p;
  if (training_) {
    Generator& g = generator_or_default(gen_);
    const std::uint64_t seed = g.seed(), offset = g.next_offset();
    Tensor masked = buffers_.like(kMasked, w.shape(), w);
    dropout(w, masked, options_.p, seed, offset, 1.0);
    linear(x, masked, b, y, e);
    masked_ = masked, seed_ = seed, offset_ = offset;
  } else if (options_.inference == DropConnectInference::mean || options_.p == 0) {
    // Expected weights (1 - p) W: the product of x and W scaled before the epilogue.
    linear(x, w, Tensor(), y, Epilogue{});
    if (keep != 1.0) scale(keep, y, y);
    bias_act_dropout(y, b, y, e);
  } else {
    // Moments of u = x (W * M)^T + b: mean q x W^T + b, variance q (1 - q) (x * x)(W * W)^T. The
    // draws come from a stream of their own (the generator's seed at offset 2^63, which training
    // never reaches), so evaluation is deterministic and never shifts the training masks.
    Tensor mean = buffers_.like(kMean, y.shape(), y), var = buffers_.like(kVar, y.shape(), y);
    linear(x, w, Tensor(), mean, Epilogue{});
    scale(keep, mean, mean);
    if (b.defined()) bias_act_dropout(mean, b, mean, Epilogue{});
    Tensor x2 = buffers_.like(kSquaredX, x.shape(), x), w2 = buffers_.like(kSquaredW, w.shape(), w);
    mul(x, x, x2);
    mul(w, w, w2);
    linear(x2, w2, Tensor(), var, Epilogue{});
    scale(keep * (1.0 - keep), var, var);
    dropconnect_gaussian(mean, var, y, options_.activation, options_.slope, options_.samples,
                         generator_or_default(gen_).seed(), std::uint64_t{1} << 63);
  }
  trained_forward_ = training_;
  x_ = x;
  y_ = y;
  return y;
}

Tensor DropConnect::backward(const Tensor& grad, bool need_input_grad) {
  if (!y_.defined()) detail::fail("DropConnect", "backward needs a forward first");
  if (!trained_forward_)
    detail::fail("DropConnect", "backward is defined after a training forward only");
  const Tensor grad_z = epilogue_input_grad(buffers_, kScaled, kGradZ, grad, y_,
                                            plain_epilogue(options_.activation, options_.slope), 1.0);
  Tensor grad_x = need_input_grad ? buffers_.like(kGradX, x_.shape(), x_) : Tensor();
  GradWrite write({weight_.get(), bias_.get()});
  // d/dW of x (W * M)^T is (grad_z^T x) * M: written straight into the gradient when it is
  // overwritten, else through a scratch tensor added to it.
  const Tensor& gw = weight_->grad_memory();
  Tensor target = write.accumulate() ? buffers_.like(kGradMasked, gw.shape(), gw) : gw;
  linear_backward(grad_z, x_, masked_, grad_x, target, Tensor(), false);
  dropout(target, target, options_.p, seed_, offset_, 1.0);
  if (write.accumulate()) axpy(1.0, target, gw);
  if (bias_) column_sum(grad_z, bias_->grad_memory(), write.accumulate());
  write.commit();
  return grad_x;
}

void DropConnect::release_own_buffers() {
  x_ = Tensor();
  y_ = Tensor();
  masked_ = Tensor();
}

}  // namespace seisoku::nn
