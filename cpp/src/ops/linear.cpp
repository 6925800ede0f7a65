// Front-ends of the linear layer: GEMM (OpenBLAS or cuBLAS, after gemm's checks), or on the
// CPU a sparse product when the left operand is mostly zeros, then the fused epilogue kernel;
// the backward composes the same products and a column sum.
#include "seisoku/linear.hpp"

#include <cmath>
#include <tuple>

#include "core/check.hpp"
#include "kernels/core.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "seisoku/reduce.hpp"

namespace seisoku {
namespace {

void check_epilogue(const char* op, const Epilogue& e) {
  if (static_cast<int>(e.activation) < 0 || static_cast<int>(e.activation) > 4)
    detail::fail(op, "unknown activation " + std::to_string(static_cast<int>(e.activation)));
  if (!(e.dropout_p >= 0.0 && e.dropout_p < 1.0))
    detail::fail(op, "dropout_p must be in [0, 1), got " + std::to_string(e.dropout_p));
  if (!(std::isfinite(e.dropout_scale) && e.dropout_scale > 0.0))
    detail::fail(op, "dropout_scale must be finite and > 0, got " + std::to_string(e.dropout_scale));
  if (e.activation == Activation::leaky_relu && !(e.slope >= 0.0 && std::isfinite(e.slope)))
    detail::fail(op, "leaky_relu slope must be finite and >= 0, got " + std::to_string(e.slope));
}

void check_matrix(const char* op, const char* name, const Tensor& t) {
  detail::check_defined(op, name, t);
  if (t.dim() != 2) detail::fail(op, std::string(name) + " must be 2-D, got shape " + shape_str(t.shape()));
  detail::check_dtype(op, name, t, {DType::float32, DType::float64});
}

void check_bias(const char* op, const char* name, const Tensor& bias, const Tensor& like, std::int64_t features) {
  if (!bias.defined()) return;  // no bias
  if (bias.dim() != 1 || bias.shape()[0] != features)
    detail::fail(op, std::string(name) + " must have shape (" + std::to_string(features) + ",), got " +
                         shape_str(bias.shape()));
  detail::check_same_dtype(op, "z", like, name, bias);
  detail::check_same_device(op, "z", like, name, bias);
}

}  // namespace

void bias_act_dropout(const Tensor& z, const Tensor& bias, const Tensor& out, const Epilogue& e) {
  const char* op = "bias_act_dropout";
  check_epilogue(op, e);
  check_matrix(op, "z", z);
  check_matrix(op, "out", out);
  detail::check_same_dtype(op, "z", z, "out", out);
  detail::check_same_shape(op, "z", z, "out", out);
  detail::check_same_device(op, "z", z, "out", out);
  check_bias(op, "bias", bias, z, z.shape()[1]);
  SEISOKU_DISPATCH(z, bias_act_dropout, z, bias, out, e);
}

void bias_act_dropout_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_z, const Epilogue& e) {
  const char* op = "bias_act_dropout_backward";
  check_epilogue(op, e);
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"grad_out", &grad_out}, {"grad_z", &grad_z}}) {
    check_matrix(op, name, *t);
    detail::check_same_dtype(op, "y", y, name, *t);
    detail::check_same_shape(op, "y", y, name, *t);
    detail::check_same_device(op, "y", y, name, *t);
  }
  SEISOKU_DISPATCH(y, bias_act_dropout_backward, grad_out, y, grad_z, e);
}

namespace {

// c = op(a) @ op(b) + beta * c (beta 0 or 1). On the CPU, where op(a) is mostly zeros (a
// ReLU or dropout output, or a gradient behind one), only its nonzero entries are multiplied:
// a NaN or Inf in op(b) then reaches only the outputs of nonzero entries, as in any sparse
// product.
void product(const char* op, const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b,
             double beta) {
  detail::check_gemm(op, a, b, c, trans_a, trans_b, 1.0, beta);
  if (!c.is_cuda() && cpu::sparse_gemm(a, b, c, trans_a, trans_b, beta != 0.0)) return;
  SEISOKU_DISPATCH(c, gemm, a, b, c, trans_a, trans_b, 1.0, beta);
}

}  // namespace

void linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, const Epilogue& e) {
  const char* op = "linear";
  check_epilogue(op, e);
  check_matrix(op, "x", x);
  check_matrix(op, "weight", weight);
  check_matrix(op, "out", out);
  detail::check_same_dtype(op, "x", x, "weight", weight);
  detail::check_same_dtype(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "weight", weight);
  if (x.shape()[1] != weight.shape()[1])
    detail::fail(op, "x has " + std::to_string(x.shape()[1]) + " features but weight expects " +
                         std::to_string(weight.shape()[1]) + " (weight shape " + shape_str(weight.shape()) + ")");
  if (out.shape()[0] != x.shape()[0] || out.shape()[1] != weight.shape()[0])
    detail::fail(op, "out must have shape (" + std::to_string(x.shape()[0]) + ", " + std::to_string(weight.shape()[0]) +
                         "), got " + shape_str(out.shape()));
  check_bias(op, "bias", bias, x, weight.shape()[0]);
  if (x.shape()[0] == 0) detail::fail(op, "empty batch: x has shape " + shape_str(x.shape()));
  product(op, x, weight, out, false, true, 0.0);
  const bool trivial = e.activation == Activation::identity && !detail::drops(e.dropout_p);
  if (bias.defined() || !trivial) SEISOKU_DISPATCH(out, bias_act_dropout, out, bias, out, e);
}

void linear_backward(const Tensor& grad_z, const Tensor& x, const Tensor& weight, const Tensor& grad_x,
                     const Tensor& grad_weight, const Tensor& grad_bias, bool accumulate) {
  const char* op = "linear_backward";
  check_matrix(op, "grad_z", grad_z);
  check_matrix(op, "x", x);
  check_matrix(op, "weight", weight);
  if (grad_z.shape()[0] != x.shape()[0] || grad_z.shape()[1] != weight.shape()[0] || x.shape()[1] != weight.shape()[1])
    detail::fail(op, "shapes do not match: grad_z " + shape_str(grad_z.shape()) + ", x " + shape_str(x.shape()) +
                         ", weight " + shape_str(weight.shape()));
  detail::check_same_dtype(op, "grad_z", grad_z, "x", x);
  detail::check_same_dtype(op, "grad_z", grad_z, "weight", weight);
  detail::check_same_device(op, "grad_z", grad_z, "x", x);
  detail::check_same_device(op, "grad_z", grad_z, "weight", weight);
  for (const auto& [name, t, like] : {std::tuple<const char*, const Tensor*, const Tensor*>{"grad_x", &grad_x, &x},
                                      {"grad_weight", &grad_weight, &weight}}) {
    if (!t->defined()) continue;
    detail::check_same_dtype(op, name, *t, "grad_z", grad_z);
    detail::check_same_device(op, name, *t, "grad_z", grad_z);
    detail::check_shape(op, name, *t, like->shape());
  }
  const double beta = accumulate ? 1.0 : 0.0;
  if (grad_x.defined()) product(op, grad_z, weight, grad_x, false, false, 0.0);
  if (grad_weight.defined()) product(op, grad_z, x, grad_weight, true, false, beta);
  if (grad_bias.defined()) column_sum(grad_z, grad_bias, accumulate);
}

}  // namespace seisoku
