#pragma once
// Regularization penalties that add their gradient into existing gradients and report
// their value (a 1-element tensor of the same dtype).
#include "seisoku/tensor.hpp"

namespace seisoku {

// Activity penalty on a layer output x (N, ...), averaged over the N samples:
// value = lambda / N * sum|x| (ord 1) or lambda / N * sum x^2 (ord 2); grad += its gradient.
SEISOKU_API void activity_penalty(const Tensor& x, double lambda, int ord, const Tensor& grad, const Tensor& value);
// Tying penalty between two parameters of one shape: value = lambda * ||a - b||^2,
// grad_a += 2 lambda (a - b), grad_b -= 2 lambda (a - b).
SEISOKU_API void tying_penalty(const Tensor& a, const Tensor& b, double lambda, const Tensor& grad_a,
                               const Tensor& grad_b, const Tensor& value);

}  // namespace seisoku
