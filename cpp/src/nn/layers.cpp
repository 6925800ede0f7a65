// Elementwise layers (activations, softmax, dropout, Gaussian noise) and the regularizers that are
// modules (activity penalty, tying penalty).
#include <cmath>
#include <optional>
#include <string>

#include "core/check.hpp"
#include "nn/common.hpp"
#include "seisoku/activation.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/mask.hpp"
#include "seisoku/nn/layers.hpp"
#include "seisoku/penalty.hpp"

namespace seisoku::nn {
namespace {

enum Buffer : std::size_t { kY, kGradX, kValue };

Tensor like_input(BufferPool& pool, std::size_t key, const char* op, const Tensor& x) {
  if (!x.defined()) detail::fail(op, "x is missing");
  return pool.like(key, x.shape(), x);
}

// A backward's gradient must have the shape of the forward's input (and follow a forward).
void check_backward(const char* op, const std::optional<Shape>& shape, const Tensor& grad) {
  if (!shape) detail::fail(op, "backward needs a forward first");
  if (!grad.defined() || grad.shape() != *shape)
    detail::fail(op, "grad must have the shape of the forward's input " + shape_str(*shape) + ", got " +
                         (grad.defined() ? shape_str(grad.shape()) : std::string("none")));
}

}  // namespace

const char* dropout_mode_name(DropoutMode mode) { return mode == DropoutMode::lecture ? "lecture" : "inverted"; }

DropoutMode dropout_mode_from_name(const std::string& name, const char* op, const char* argument) {
  if (name == "inverted") return DropoutMode::inverted;
  if (name == "lecture") return DropoutMode::lecture;
  detail::fail(op, std::string("argument '") + argument + "' must be 'inverted' or 'lecture', got '" + name + "'");
}

// ---- activations ----

ActivationLayer::ActivationLayer(Activation activation, double slope) : activation_(activation), slope_(slope) {
  check_slope(type_name(), slope);
}

const char* ActivationLayer::type_name() const {
  switch (activation_) {
    case Activation::relu: return "ReLU";
    case Activation::leaky_relu: return "LeakyReLU";
    case Activation::tanh: return "Tanh";
    case Activation::sigmoid: return "Sigmoid";
    default: return "Identity";
  }
}

Tensor ActivationLayer::forward(const Tensor& x) {
  Tensor y = like_input(buffers_, kY, "activation", x);
  seisoku::activation(x, y, activation_, slope_);
  y_ = y;
  return y;
}

Tensor ActivationLayer::backward(const Tensor& grad, bool) {
  if (!y_.defined()) detail::fail(type_name(), "backward needs a forward first");
  Tensor g = buffers_.like(kGradX, y_.shape(), y_);
  activation_backward(grad, y_, g, activation_, slope_);
  return g;
}

Tensor Softmax::forward(const Tensor& x) {
  Tensor y = like_input(buffers_, kY, "softmax", x);
  softmax(x, y);
  y_ = y;
  return y;
}

Tensor Softmax::backward(const Tensor& grad, bool) {
  if (!y_.defined()) detail::fail("Softmax", "backward needs a forward first");
  Tensor g = buffers_.like(kGradX, y_.shape(), y_);
  softmax_backward(grad, y_, g);
  return g;
}

// ---- dropout and noise ----

Dropout::Dropout(double p, DropoutMode mode, std::shared_ptr<Generator> generator)
    : p_(p), mode_(mode), gen_(std::move(generator)) {
  check_probability("Dropout", "p", p);
}

Tensor Dropout::forward(const Tensor& x) {
  if (!x.defined()) detail::fail("dropout", "x is missing");
  const bool masked = training_ && p_ > 0;
  const double factor = !training_ && mode_ == DropoutMode::lecture ? 1.0 - p_ : 1.0;
  Tensor y = x;
  if (masked) {
    y = like_input(buffers_, kY, "dropout", x);
    Generator& g = generator_or_default(gen_);
    const std::uint64_t seed = g.seed(), offset = g.next_offset();
    const std::int64_t rows = x.dim() > 0 ? x.shape()[0] : 1;
    const std::uint64_t first = rows > 0 ? first_row_ * static_cast<std::uint64_t>(x.numel() / rows) : 0;
    dropout(x, y, p_, seed, offset, mode_ == DropoutMode::inverted ? 1.0 / (1.0 - p_) : 1.0, first);
    seed_ = seed, offset_ = offset, first_ = first;
  } else if (factor != 1.0) {
    y = like_input(buffers_, kY, "dropout", x);
    scale(factor, x, y);
  }
  masked_ = masked, factor_ = factor, shape_ = x.shape();
  return y;
}

Tensor Dropout::backward(const Tensor& grad, bool) {
  check_backward("Dropout", shape_, grad);
  if (!masked_ && factor_ == 1.0) return grad;
  Tensor g = like_input(buffers_, kGradX, "dropout", grad);
  if (masked_) dropout(grad, g, p_, seed_, offset_, mode_ == DropoutMode::inverted ? 1.0 / (1.0 - p_) : 1.0, first_);
  else scale(factor_, grad, g);
  return g;
}

GaussianNoise::GaussianNoise(double stddev, std::shared_ptr<Generator> generator)
    : std_(stddev), gen_(std::move(generator)) {
  if (!(stddev >= 0.0 && std::isfinite(stddev)))
    detail::fail("GaussianNoise", "argument 'std' must be finite and >= 0, got " + number(stddev));
}

Tensor GaussianNoise::forward(const Tensor& x) {
  if (!x.defined()) detail::fail("gaussian_noise", "x is missing");
  Tensor y = x;
  if (training_ && std_ != 0.0) {
    y = like_input(buffers_, kY, "gaussian_noise", x);
    Generator& g = generator_or_default(gen_);
    gaussian_noise(x, y, std_, g.seed(), g.next_offset());
  }
  shape_ = x.shape();
  return y;
}

Tensor GaussianNoise::backward(const Tensor& grad, bool) {
  check_backward("GaussianNoise", shape_, grad);
  return grad;
}

// ---- regularizers ----

ActivityRegularization::ActivityRegularization(double lam, int ord) : lam_(lam), ord_(ord) {
  if (!(lam >= 0.0 && std::isfinite(lam)))
    detail::fail("ActivityRegularization", "argument 'lam' must be finite and >= 0, got " + number(lam));
  if (ord != 1 && ord != 2)
    detail::fail("ActivityRegularization", "argument 'ord' must be 1 or 2, got " + std::to_string(ord));
}

Tensor ActivityRegularization::forward(const Tensor& x) {
  x_ = x;
  return x;
}

Tensor ActivityRegularization::backward(const Tensor& grad, bool) {
  if (!x_.defined()) detail::fail("ActivityRegularization", "backward needs a forward first");
  Tensor g = like_input(buffers_, kGradX, "activity_penalty", grad);
  copy(grad, g);
  value_ = buffers_.get(kValue, {}, x_.dtype(), x_.device(), x_.device_index());
  activity_penalty(x_, lam_, ord_, g, value_);
  return g;
}

double ActivityRegularization::own_penalty() const { return scalar_value(value_); }

Tie::Tie(ParameterPtr a, ParameterPtr b, double lam) : a_(std::move(a)), b_(std::move(b)), lam_(lam) {
  if (!a_ || !b_) detail::fail("Tie", "arguments 'a' and 'b' must be parameters");
  if (a_->value().shape() != b_->value().shape())
    detail::fail("Tie", "tied parameters need one shape, got " + shape_str(a_->value().shape()) + " and " +
                            shape_str(b_->value().shape()));
  if (!(lam >= 0.0 && std::isfinite(lam)))
    detail::fail("Tie", "argument 'lam' must be finite and >= 0, got " + number(lam));
}

Tensor Tie::forward(const Tensor&) {
  detail::fail("Tie", "a tie has no forward: attach it to a model and call apply_penalties()");
}

Tensor Tie::backward(const Tensor&, bool) {
  detail::fail("Tie", "a tie has no backward: attach it to a model and call apply_penalties()");
}

void Tie::apply_own_penalties() {
  const Tensor& a = a_->value();
  value_ = buffers_.get(kValue, {}, a.dtype(), a.device(), a.device_index());
  tying_penalty(a, b_->value(), lam_, a_->grad(), b_->grad(), value_);
}

double Tie::own_penalty() const { return scalar_value(value_); }

}  // namespace seisoku::nn
