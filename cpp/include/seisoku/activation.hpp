#pragma once
// Activation functions and softmax, forward and backward. The backward passes take the
// forward output y (not x), so a layer keeps one tensor per activation.
#include <string>

#include "seisoku/tensor.hpp"

namespace seisoku {

enum class Activation : int { identity = 0, relu = 1, leaky_relu = 2, tanh = 3, sigmoid = 4 };

SEISOKU_API const char* activation_name(Activation act);
// Parses "identity", "relu", "leaky_relu", "tanh", "sigmoid"; throws std::invalid_argument.
SEISOKU_API Activation activation_from_name(const std::string& name);

// out = act(x); slope is the negative-side slope of leaky_relu (>= 0). out may alias x.
SEISOKU_API void activation(const Tensor& x, const Tensor& out, Activation act, double slope = 0.01);
// grad_in = grad_out * act'(x), computed from y = act(x). grad_in may alias grad_out.
SEISOKU_API void activation_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in, Activation act,
                                     double slope = 0.01);
// Softmax over the last axis (rows of x seen as (numel / last, last)).
SEISOKU_API void softmax(const Tensor& x, const Tensor& out);
// grad_in = y * (grad_out - sum(grad_out * y)) per row.
SEISOKU_API void softmax_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in);

}  // namespace seisoku
