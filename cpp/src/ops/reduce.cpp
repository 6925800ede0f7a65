// Front-ends of the reductions: validate, then dispatch on the device.
#include "seisoku/reduce.hpp"

#include <cmath>

#include "core/check.hpp"
#include "kernels/core.hpp"

namespace seisoku {
namespace {

void check_reduction(const char* op, const Tensor& x, const Tensor& out, std::int64_t out_numel) {
  detail::check_defined(op, "x", x);
  detail::check_defined(op, "out", out);
  detail::check_dtype(op, "x", x, {DType::float32, DType::float64});
  detail::check_same_dtype(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
  detail::check_numel(op, "out", out, out_numel);
}

void check_ord(const char* op, double ord) {
  if (!(ord == 0 || ord == 1 || ord == 2 || std::isinf(ord)))
    detail::fail(op, "ord must be 0, 1, 2 or inf, got " + std::to_string(ord));
  if (std::isinf(ord) && ord < 0) detail::fail(op, "ord must be 0, 1, 2 or inf, got -inf");
}

}  // namespace

void sum(const Tensor& x, const Tensor& out) {
  check_reduction("sum", x, out, 1);
  SEISOKU_DISPATCH(x, sum, x, out);
}

void mean(const Tensor& x, const Tensor& out) {
  check_reduction("mean", x, out, 1);
  detail::check_nonempty("mean", "x", x);
  SEISOKU_DISPATCH(x, mean, x, out);
}

void max(const Tensor& x, const Tensor& out) {
  check_reduction("max", x, out, 1);
  detail::check_nonempty("max", "x", x);
  SEISOKU_DISPATCH(x, max, x, out);
}

void norm(const Tensor& x, double ord, const Tensor& out) {
  check_ord("norm", ord);
  check_reduction("norm", x, out, 1);
  SEISOKU_DISPATCH(x, norm, x, ord, out);
}

void row_norm(const Tensor& x, double ord, const Tensor& out) {
  check_ord("row_norm", ord);
  if (x.dim() < 1) detail::fail("row_norm", "x must have at least 1 dimension, got shape " + shape_str(x.shape()));
  check_reduction("row_norm", x, out, x.shape()[0]);
  SEISOKU_DISPATCH(x, row_norm, x, ord, out);
}

void column_sum(const Tensor& x, const Tensor& out, bool accumulate) {
  if (x.dim() != 2) detail::fail("column_sum", "x must be 2-D, got shape " + shape_str(x.shape()));
  check_reduction("column_sum", x, out, x.shape()[1]);
  SEISOKU_DISPATCH(x, column_sum, x, out, accumulate);
}

}  // namespace seisoku
