// Penalties composed from existing ops (norms, axpy, axpy_sign), so each runs on the device
// of its tensors without kernels of its own.
#include "seisoku/penalty.hpp"

#include <cmath>

#include "core/check.hpp"
#include "kernels/core.hpp"

namespace seisoku {
namespace {

void check_like(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  detail::check_defined(op, b_name, b);
  detail::check_same_dtype(op, a_name, a, b_name, b);
  detail::check_same_shape(op, a_name, a, b_name, b);
  detail::check_same_device(op, a_name, a, b_name, b);
}

void check_value(const char* op, const Tensor& like, const Tensor& value) {
  detail::check_defined(op, "value", value);
  detail::check_numel(op, "value", value, 1);
  detail::check_same_dtype(op, "x", like, "value", value);
  detail::check_same_device(op, "x", like, "value", value);
}

void check_lambda(const char* op, double lambda) {
  if (!(lambda >= 0.0 && std::isfinite(lambda)))
    detail::fail(op, "lambda must be finite and >= 0, got " + std::to_string(lambda));
}

}  // namespace

void activity_penalty(const Tensor& x, double lambda, int ord, const Tensor& grad, const Tensor& value) {
  const char* op = "activity_penalty";
  check_lambda(op, lambda);
  if (ord != 1 && ord != 2) detail::fail(op, "ord must be 1 or 2, got " + std::to_string(ord));
  detail::check_defined(op, "x", x);
  detail::check_dtype(op, "x", x, {DType::float32, DType::float64});
  if (x.dim() < 1 || x.shape()[0] == 0) detail::fail(op, "x must hold at least one sample, got shape " + shape_str(x.shape()));
  check_like(op, "x", x, "grad", grad);
  check_value(op, x, value);
  // The composite runs on the kernels directly: its arguments are checked above, once.
  const double per_sample = lambda / static_cast<double>(x.shape()[0]);
  SEISOKU_DISPATCH(x, norm, x, static_cast<double>(ord), value);
  if (ord == 1) {
    SEISOKU_DISPATCH(x, scale, per_sample, value, value);
    SEISOKU_DISPATCH(x, axpy_sign, per_sample, x, grad);
  } else {
    // (sqrt(c) ||x||)^2 overflows only when the penalty itself does.
    SEISOKU_DISPATCH(x, scale, std::sqrt(per_sample), value, value);
    SEISOKU_DISPATCH(x, mul, value, value, value);
    SEISOKU_DISPATCH(x, axpy, 2.0 * per_sample, x, grad);
  }
}

void tying_penalty(const Tensor& a, const Tensor& b, double lambda, const Tensor& grad_a, const Tensor& grad_b,
                   const Tensor& value) {
  const char* op = "tying_penalty";
  check_lambda(op, lambda);
  detail::check_defined(op, "a", a);
  detail::check_dtype(op, "a", a, {DType::float32, DType::float64});
  check_like(op, "a", a, "b", b);
  check_like(op, "a", a, "grad_a", grad_a);
  check_like(op, "a", a, "grad_b", grad_b);
  check_value(op, a, value);
  Tensor diff = Tensor::empty(a.shape(), a.dtype(), a.device(), a.device_index());
  SEISOKU_DISPATCH(a, scale, -1.0, b, diff);
  SEISOKU_DISPATCH(a, add, a, diff, diff);
  SEISOKU_DISPATCH(a, norm, diff, 2.0, value);
  SEISOKU_DISPATCH(a, scale, std::sqrt(lambda), value, value);
  SEISOKU_DISPATCH(a, mul, value, value, value);
  SEISOKU_DISPATCH(a, axpy, 2.0 * lambda, diff, grad_a);
  SEISOKU_DISPATCH(a, axpy, -2.0 * lambda, diff, grad_b);
}

}  // namespace seisoku
