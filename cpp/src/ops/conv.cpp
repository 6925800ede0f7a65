// Front-ends of conv2d and conv2d_backward: validate shapes, dtypes, devices and geometry,
// then dispatch on the device.
#include "seisoku/conv.hpp"

#include <string>

#include "core/check.hpp"
#include "kernels/conv.hpp"

namespace seisoku {
namespace {

using detail::check_no_overlap;
using detail::check_shape;
using detail::fail;

std::string str(std::int64_t v) { return std::to_string(v); }

void check_rank4(const char* op, const char* name, const Tensor& t, const char* layout) {
  detail::check_defined(op, name, t);
  if (t.dim() != 4) fail(op, std::string(name) + " must be 4-D " + layout + ", got shape " + shape_str(t.shape()));
}

// Checks x and weight (and the conv geometry) and returns it.
ConvGeometry check_conv(const char* op, const Tensor& x, const Tensor& weight, std::int64_t stride_h,
                        std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  check_rank4(op, "x", x, "(N, C, H, W)");
  check_rank4(op, "weight", weight, "(O, C, kh, kw)");
  detail::check_dtype(op, "x", x, {DType::float32, DType::float64});
  detail::check_same_dtype(op, "x", x, "weight", weight);
  detail::check_same_device(op, "x", x, "weight", weight);
  const Shape& xs = x.shape();
  const Shape& ws = weight.shape();
  if (xs[0] == 0) fail(op, "x has an empty batch (N = 0), shape " + shape_str(xs));
  if (xs[1] == 0 || xs[2] == 0 || xs[3] == 0) fail(op, "x must have C, H, W >= 1, got shape " + shape_str(xs));
  if (ws[0] == 0 || ws[2] == 0 || ws[3] == 0) fail(op, "weight must have O, kh, kw >= 1, got shape " + shape_str(ws));
  if (ws[1] != xs[1])
    fail(op, "weight has " + str(ws[1]) + " input channel(s) but x has " + str(xs[1]) + " (x " + shape_str(xs) +
                 ", weight " + shape_str(ws) + ")");
  if (stride_h < 1 || stride_w < 1)
    fail(op, "stride must be >= 1, got (" + str(stride_h) + ", " + str(stride_w) + ")");
  if (pad_h < 0 || pad_w < 0) fail(op, "padding must be >= 0, got (" + str(pad_h) + ", " + str(pad_w) + ")");
  if (ws[2] > xs[2] + 2 * pad_h || ws[3] > xs[3] + 2 * pad_w)
    fail(op, "kernel " + str(ws[2]) + "x" + str(ws[3]) + " is larger than the padded input " +
                 str(xs[2] + 2 * pad_h) + "x" + str(xs[3] + 2 * pad_w));
  return conv_geometry(x, weight, stride_h, stride_w, pad_h, pad_w);
}

// An optional tensor: Tensor() or an array of the given shape, dtype and device as `like`.
void check_optional(const char* op, const char* name, const Tensor& t, const Shape& shape, const Tensor& like) {
  if (!t.defined()) return;
  detail::check_defined(op, name, t);
  check_shape(op, name, t, shape);
  detail::check_same_dtype(op, "x", like, name, t);
  detail::check_same_device(op, "x", like, name, t);
}

}  // namespace

Shape conv2d_shape(const Tensor& x, const Tensor& weight, std::int64_t stride_h, std::int64_t stride_w,
                   std::int64_t pad_h, std::int64_t pad_w) {
  const ConvGeometry g = check_conv("conv2d", x, weight, stride_h, stride_w, pad_h, pad_w);
  return {g.n, g.o, g.ho, g.wo};
}

void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, std::int64_t stride_h,
            std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  const char* op = "conv2d";
  const ConvGeometry g = check_conv(op, x, weight, stride_h, stride_w, pad_h, pad_w);
  check_optional(op, "bias", bias, {g.o}, x);
  check_rank4(op, "out", out, "(N, O, Ho, Wo)");
  check_shape(op, "out", out, {g.n, g.o, g.ho, g.wo});
  detail::check_same_dtype(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
  check_no_overlap(op, "out", out, "x", x);
  check_no_overlap(op, "out", out, "weight", weight);
  check_no_overlap(op, "out", out, "bias", bias);
  SEISOKU_DISPATCH(out, conv2d, x, weight, bias, out, stride_h, stride_w, pad_h, pad_w);
}

void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& grad_x,
                     const Tensor& grad_weight, const Tensor& grad_bias, std::int64_t stride_h, std::int64_t stride_w,
                     std::int64_t pad_h, std::int64_t pad_w, bool accumulate) {
  const char* op = "conv2d_backward";
  const ConvGeometry g = check_conv(op, x, weight, stride_h, stride_w, pad_h, pad_w);
  check_rank4(op, "grad_out", grad_out, "(N, O, Ho, Wo)");
  check_shape(op, "grad_out", grad_out, {g.n, g.o, g.ho, g.wo});
  detail::check_same_dtype(op, "x", x, "grad_out", grad_out);
  detail::check_same_device(op, "x", x, "grad_out", grad_out);
  check_optional(op, "grad_x", grad_x, x.shape(), x);
  check_optional(op, "grad_weight", grad_weight, weight.shape(), x);
  check_optional(op, "grad_bias", grad_bias, {g.o}, x);
  const std::pair<const char*, const Tensor*> outs[] = {
      {"grad_x", &grad_x}, {"grad_weight", &grad_weight}, {"grad_bias", &grad_bias}};
  const std::pair<const char*, const Tensor*> ins[] = {{"grad_out", &grad_out}, {"x", &x}, {"weight", &weight}};
  for (std::size_t i = 0; i < 3; ++i) {
    for (const auto& [name, t] : ins) check_no_overlap(op, outs[i].first, *outs[i].second, name, *t);
    for (std::size_t j = i + 1; j < 3; ++j)
      check_no_overlap(op, outs[i].first, *outs[i].second, outs[j].first, *outs[j].second);
  }
  if (!grad_x.defined() && !grad_weight.defined() && !grad_bias.defined()) return;
  SEISOKU_DISPATCH(x, conv2d_backward, grad_out, x, weight, grad_x, grad_weight, grad_bias, stride_h, stride_w,
                   pad_h, pad_w, accumulate);
}

}  // namespace seisoku
