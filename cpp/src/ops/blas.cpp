// Front-end of gemm: validate shapes, dtypes and devices, then dispatch.
#include "seisoku/blas.hpp"

#include <cmath>
#include <limits>

#include "core/check.hpp"
#include "kernels/core.hpp"

namespace seisoku {

namespace detail {

void check_gemm(const char* op, const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b,
                double alpha, double beta) {
  check_defined(op, "a", a);
  check_defined(op, "b", b);
  check_defined(op, "c", c);
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"a", &a}, {"b", &b}, {"c", &c}})
    if (t->dim() != 2) fail(op, std::string(name) + " must be 2-D, got shape " + shape_str(t->shape()));
  check_dtype(op, "a", a, {DType::float32, DType::float64});
  check_same_dtype(op, "a", a, "b", b);
  check_same_dtype(op, "a", a, "c", c);
  check_same_device(op, "a", a, "b", b);
  check_same_device(op, "a", a, "c", c);
  if (!std::isfinite(alpha) || !std::isfinite(beta))
    fail(op, "alpha and beta must be finite, got " + std::to_string(alpha) + " and " + std::to_string(beta));
  const std::int64_t m = trans_a ? a.shape()[1] : a.shape()[0];
  const std::int64_t ka = trans_a ? a.shape()[0] : a.shape()[1];
  const std::int64_t kb = trans_b ? b.shape()[1] : b.shape()[0];
  const std::int64_t n = trans_b ? b.shape()[0] : b.shape()[1];
  if (ka != kb)
    fail(op, "inner dimensions differ: op(a) is (" + std::to_string(m) + ", " + std::to_string(ka) +
                         ") and op(b) is (" + std::to_string(kb) + ", " + std::to_string(n) + ")");
  if (c.shape()[0] != m || c.shape()[1] != n)
    fail(op, "c must have shape (" + std::to_string(m) + ", " + std::to_string(n) + "), got " +
                         shape_str(c.shape()));
  constexpr std::int64_t kMax = std::numeric_limits<int>::max();
  for (std::int64_t d : {m, n, ka, a.shape()[1], b.shape()[1]})
    if (d > kMax) fail(op, "dimension " + std::to_string(d) + " exceeds the 32-bit BLAS limit");
}

}  // namespace detail

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, double alpha, double beta) {
  detail::check_gemm("gemm", a, b, c, trans_a, trans_b, alpha, beta);
  SEISOKU_DISPATCH(c, gemm, a, b, c, trans_a, trans_b, alpha, beta);
}

}  // namespace seisoku
