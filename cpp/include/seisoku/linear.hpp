#pragma once
// Fully connected layer with a fused epilogue: bias, activation and dropout applied in one
// pass over the GEMM output. Weight layout (out_features, in_features), as in PyTorch.
#include <cstdint>

#include "seisoku/activation.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku {

// What follows the matrix product, in order: + bias, activation, dropout.
struct Epilogue {
  Activation activation = Activation::identity;
  double slope = 0.01;         // leaky_relu negative slope
  double dropout_p = 0.0;      // 0 disables dropout
  double dropout_scale = 1.0;  // 1 / (1 - p) for inverted dropout
  std::uint64_t seed = 0;      // Philox stream of the dropout mask
  std::uint64_t offset = 0;
  std::uint64_t first = 0;     // stream element of z's element 0 (a batch shard starting at row r: r * F)
};

// out = dropout(act(z + bias)) over rows of z (N, F); bias (F,) or an empty Tensor. out may alias z.
SEISOKU_API void bias_act_dropout(const Tensor& z, const Tensor& bias, const Tensor& out, const Epilogue& e);
// grad_z = gradient through the epilogue, from the epilogue's output y and its mask (drawn again).
SEISOKU_API void bias_act_dropout_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_z,
                                           const Epilogue& e);
// out (N, F) = epilogue(x (N, in) @ weight (F, in)^T).
SEISOKU_API void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out,
                        const Epilogue& e = {});
// From grad_z (the gradient before the epilogue): grad_x = grad_z @ weight,
// grad_weight (+)= grad_z^T @ x, grad_bias (+)= column sums of grad_z. Undefined outputs are
// skipped; accumulate adds into grad_weight / grad_bias (shared parameters).
SEISOKU_API void linear_backward(const Tensor& grad_z, const Tensor& x, const Tensor& weight, const Tensor& grad_x,
                                 const Tensor& grad_weight, const Tensor& grad_bias, bool accumulate);

}  // namespace seisoku
