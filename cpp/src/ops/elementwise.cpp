// Front-ends of the elementwise ops: validate, then dispatch on the device.
#include "seisoku/elementwise.hpp"

#include <cmath>

#include "core/check.hpp"
#include "kernels/core.hpp"

namespace seisoku {
namespace {

using detail::check_dtype;
using detail::check_same_device;
using detail::check_same_dtype;
using detail::check_same_shape;

void check_float_binary(const char* op, const Tensor& a, const Tensor& b, const Tensor& out) {
  detail::check_defined(op, "a", a);
  detail::check_defined(op, "b", b);
  detail::check_defined(op, "out", out);
  check_dtype(op, "a", a, {DType::float32, DType::float64});
  check_same_dtype(op, "a", a, "b", b);
  check_same_dtype(op, "a", a, "out", out);
  check_same_shape(op, "a", a, "b", b);
  check_same_shape(op, "a", a, "out", out);
  check_same_device(op, "a", a, "b", b);
  check_same_device(op, "a", a, "out", out);
}

void check_float_unary(const char* op, const char* x_name, const Tensor& x, const char* out_name, const Tensor& out) {
  detail::check_defined(op, x_name, x);
  detail::check_defined(op, out_name, out);
  check_dtype(op, x_name, x, {DType::float32, DType::float64});
  check_same_dtype(op, x_name, x, out_name, out);
  check_same_shape(op, x_name, x, out_name, out);
  check_same_device(op, x_name, x, out_name, out);
}

void check_finite_scalar(const char* op, const char* name, double v) {
  if (!std::isfinite(v)) detail::fail(op, std::string(name) + " must be finite, got " + std::to_string(v));
}

}  // namespace

void add(const Tensor& a, const Tensor& b, const Tensor& out) {
  check_float_binary("add", a, b, out);
  SEISOKU_DISPATCH(out, add, a, b, out);
}

void mul(const Tensor& a, const Tensor& b, const Tensor& out) {
  check_float_binary("mul", a, b, out);
  SEISOKU_DISPATCH(out, mul, a, b, out);
}

void axpy(double alpha, const Tensor& x, const Tensor& y) {
  check_finite_scalar("axpy", "alpha", alpha);
  check_float_unary("axpy", "x", x, "y", y);
  SEISOKU_DISPATCH(y, axpy, alpha, x, y);
}

void axpy_sign(double alpha, const Tensor& x, const Tensor& y) {
  check_finite_scalar("axpy_sign", "alpha", alpha);
  check_float_unary("axpy_sign", "x", x, "y", y);
  SEISOKU_DISPATCH(y, axpy_sign, alpha, x, y);
}

void scale(double alpha, const Tensor& x, const Tensor& out) {
  check_finite_scalar("scale", "alpha", alpha);
  check_float_unary("scale", "x", x, "out", out);
  SEISOKU_DISPATCH(out, scale, alpha, x, out);
}

void fill(const Tensor& out, double value) {
  detail::check_defined("fill", "out", out);
  if (!is_floating(out.dtype()) && !std::isfinite(value))
    detail::fail("fill", std::string("value ") + std::to_string(value) + " cannot be stored in " + dtype_name(out.dtype()));
  SEISOKU_DISPATCH(out, fill, out, value);
}

void copy(const Tensor& src, const Tensor& dst) {
  detail::check_defined("copy", "src", src);
  detail::check_defined("copy", "dst", dst);
  check_same_shape("copy", "src", src, "dst", dst);
  if (src.device() != dst.device() || src.device_index() != dst.device_index()) {
    if (src.dtype() != dst.dtype())
      detail::fail("copy", std::string("a copy between devices needs equal dtypes, got ") + dtype_name(src.dtype()) +
                               " and " + dtype_name(dst.dtype()) + "; cast on one device first");
    SEISOKU_GPU_CALL(copy_bytes, src, dst);
    return;
  }
  SEISOKU_DISPATCH(dst, copy, src, dst);
}

}  // namespace seisoku
