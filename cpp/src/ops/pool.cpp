// Front-ends of max_pool2d, avg_pool2d and their backward ops: validate shapes, dtypes,
// devices and the window geometry, then dispatch on the device.
#include "seisoku/pool.hpp"

#include <string>

#include "core/check.hpp"
#include "kernels/pool.hpp"

namespace seisoku {
namespace {

using detail::check_no_overlap;
using detail::check_shape;
using detail::fail;

std::string str(std::int64_t v) { return std::to_string(v); }

void check_rank4(const char* op, const char* name, const Tensor& t) {
  detail::check_defined(op, name, t);
  if (t.dim() != 4) fail(op, std::string(name) + " must be 4-D (N, C, H, W), got shape " + shape_str(t.shape()));
}

// Checks the input shape (N, C, H, W) named `name` and the window; returns the geometry.
PoolGeometry check_window(const char* op, const char* name, const Shape& xs, std::int64_t kh, std::int64_t kw,
                          std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  if (xs[0] == 0) fail(op, std::string(name) + " has an empty batch (N = 0), shape " + shape_str(xs));
  if (xs[1] == 0 || xs[2] == 0 || xs[3] == 0)
    fail(op, std::string(name) + " must have C, H, W >= 1, got shape " + shape_str(xs));
  if (kh < 1 || kw < 1) fail(op, "kernel size must be >= 1, got (" + str(kh) + ", " + str(kw) + ")");
  if (stride_h < 1 || stride_w < 1)
    fail(op, "stride must be >= 1, got (" + str(stride_h) + ", " + str(stride_w) + ")");
  if (pad_h < 0 || pad_w < 0) fail(op, "padding must be >= 0, got (" + str(pad_h) + ", " + str(pad_w) + ")");
  if (2 * pad_h > kh || 2 * pad_w > kw)
    fail(op, "padding must be at most half the kernel size, got padding (" + str(pad_h) + ", " + str(pad_w) +
                 ") for kernel (" + str(kh) + ", " + str(kw) + ")");
  if (kh > xs[2] + 2 * pad_h || kw > xs[3] + 2 * pad_w)
    fail(op, "kernel " + str(kh) + "x" + str(kw) + " is larger than the padded input " + str(xs[2] + 2 * pad_h) +
                 "x" + str(xs[3] + 2 * pad_w));
  return pool_geometry(xs, kh, kw, stride_h, stride_w, pad_h, pad_w);
}

void check_float_pair(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  detail::check_dtype(op, a_name, a, {DType::float32, DType::float64});
  detail::check_same_dtype(op, a_name, a, b_name, b);
  detail::check_same_device(op, a_name, a, b_name, b);
  check_no_overlap(op, b_name, b, a_name, a);
}

}  // namespace

Shape pool2d_shape(const char* op, const Tensor& x, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                   std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  check_rank4(op, "x", x);
  const PoolGeometry g = check_window(op, "x", x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  return {g.n, g.c, g.ho, g.wo};
}

void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices, std::int64_t kh, std::int64_t kw,
                std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  const char* op = "max_pool2d";
  check_rank4(op, "x", x);
  check_rank4(op, "out", out);
  check_rank4(op, "indices", indices);
  const PoolGeometry g = check_window(op, "x", x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  check_float_pair(op, "x", x, "out", out);
  check_shape(op, "out", out, {g.n, g.c, g.ho, g.wo});
  detail::check_dtype(op, "indices", indices, {DType::int64});
  check_shape(op, "indices", indices, {g.n, g.c, g.ho, g.wo});
  detail::check_same_device(op, "x", x, "indices", indices);
  check_no_overlap(op, "indices", indices, "x", x);
  check_no_overlap(op, "indices", indices, "out", out);
  SEISOKU_DISPATCH(out, max_pool2d, x, out, indices, kh, kw, stride_h, stride_w, pad_h, pad_w);
}

void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Tensor& grad_x) {
  const char* op = "max_pool2d_backward";
  check_rank4(op, "grad_out", grad_out);
  check_rank4(op, "indices", indices);
  check_rank4(op, "grad_x", grad_x);
  check_float_pair(op, "grad_out", grad_out, "grad_x", grad_x);
  detail::check_dtype(op, "indices", indices, {DType::int64});
  check_shape(op, "indices", indices, grad_out.shape());
  detail::check_same_device(op, "grad_out", grad_out, "indices", indices);
  check_no_overlap(op, "grad_x", grad_x, "indices", indices);
  const Shape& gs = grad_x.shape();
  const Shape& os = grad_out.shape();
  if (gs[0] == 0) fail(op, "grad_x has an empty batch (N = 0), shape " + shape_str(gs));
  if (gs[1] == 0 || gs[2] == 0 || gs[3] == 0) fail(op, "grad_x must have C, H, W >= 1, got shape " + shape_str(gs));
  if (os[0] != gs[0] || os[1] != gs[1])
    fail(op, "grad_out " + shape_str(os) + " and grad_x " + shape_str(gs) + " must agree on N and C");
  SEISOKU_DISPATCH(grad_x, max_pool2d_backward, grad_out, indices, grad_x);
}

void avg_pool2d(const Tensor& x, const Tensor& out, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w, bool count_include_pad) {
  const char* op = "avg_pool2d";
  check_rank4(op, "x", x);
  check_rank4(op, "out", out);
  const PoolGeometry g = check_window(op, "x", x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  check_float_pair(op, "x", x, "out", out);
  check_shape(op, "out", out, {g.n, g.c, g.ho, g.wo});
  SEISOKU_DISPATCH(out, avg_pool2d, x, out, kh, kw, stride_h, stride_w, pad_h, pad_w, count_include_pad);
}

void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_x, std::int64_t kh, std::int64_t kw,
                         std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w,
                         bool count_include_pad) {
  const char* op = "avg_pool2d_backward";
  check_rank4(op, "grad_out", grad_out);
  check_rank4(op, "grad_x", grad_x);
  const PoolGeometry g = check_window(op, "grad_x", grad_x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  check_float_pair(op, "grad_out", grad_out, "grad_x", grad_x);
  check_shape(op, "grad_out", grad_out, {g.n, g.c, g.ho, g.wo});
  SEISOKU_DISPATCH(grad_x, avg_pool2d_backward, grad_out, grad_x, kh, kw, stride_h, stride_w, pad_h, pad_w,
                   count_include_pad);
}

}  // namespace seisoku
