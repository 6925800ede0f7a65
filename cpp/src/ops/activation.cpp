// Front-ends of the activations and softmax.
#include "seisoku/activation.hpp"

#include <cmath>

#include "core/check.hpp"
#include "kernels/nn.hpp"

namespace seisoku {
namespace {

void check_pair(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  detail::check_defined(op, a_name, a);
  detail::check_defined(op, b_name, b);
  detail::check_dtype(op, a_name, a, {DType::float32, DType::float64});
  detail::check_same_dtype(op, a_name, a, b_name, b);
  detail::check_same_shape(op, a_name, a, b_name, b);
  detail::check_same_device(op, a_name, a, b_name, b);
}

void check_act(const char* op, Activation act, double slope) {
  if (static_cast<int>(act) < 0 || static_cast<int>(act) > 4)
    detail::fail(op, "unknown activation " + std::to_string(static_cast<int>(act)));
  if (act == Activation::leaky_relu && !(slope >= 0.0 && std::isfinite(slope)))
    detail::fail(op, "leaky_relu slope must be finite and >= 0, got " + std::to_string(slope));
}

}  // namespace

const char* activation_name(Activation act) {
  switch (act) {
    case Activation::relu: return "relu";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::tanh: return "tanh";
    case Activation::sigmoid: return "sigmoid";
    default: return "identity";
  }
}

Activation activation_from_name(const std::string& name) {
  for (Activation a : {Activation::identity, Activation::relu, Activation::leaky_relu, Activation::tanh,
                       Activation::sigmoid})
    if (name == activation_name(a)) return a;
  detail::fail("activation", "unknown activation '" + name + "' (identity, relu, leaky_relu, tanh, sigmoid)");
}

void activation(const Tensor& x, const Tensor& out, Activation act, double slope) {
  check_act("activation", act, slope);
  check_pair("activation", "x", x, "out", out);
  SEISOKU_DISPATCH(x, activation, x, out, act, slope);
}

void activation_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in, Activation act, double slope) {
  check_act("activation_backward", act, slope);
  check_pair("activation_backward", "grad_out", grad_out, "y", y);
  check_pair("activation_backward", "y", y, "grad_in", grad_in);
  SEISOKU_DISPATCH(y, activation_backward, grad_out, y, grad_in, act, slope);
}

void softmax(const Tensor& x, const Tensor& out) {
  check_pair("softmax", "x", x, "out", out);
  SEISOKU_DISPATCH(x, softmax, x, out);
}

void softmax_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in) {
  check_pair("softmax_backward", "grad_out", grad_out, "y", y);
  check_pair("softmax_backward", "y", y, "grad_in", grad_in);
  SEISOKU_DISPATCH(y, softmax_backward, grad_out, y, grad_in);
}

}  // namespace seisoku
