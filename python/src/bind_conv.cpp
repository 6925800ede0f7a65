#include "convert.hpp"
#include "seisoku/conv.hpp"

namespace seisoku::python {
namespace {

// An optional array argument: None becomes Tensor() (no bias, or a gradient not wanted).
Tensor optional(Call& c, const py::object& obj, const char* arg, bool writable) {
  if (obj.is_none()) return Tensor();
  return writable ? c.out(obj, arg) : c.in(obj, arg);
}

}  // namespace

void bind_conv(py::module_& m) {
  using py::arg;
  m.def(
      "conv2d",
      [](py::handle x, py::handle weight, const py::object& bias, py::handle out, std::int64_t stride_h,
         std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
        Call c("conv2d");
        Tensor tx = c.in(x, "x"), tw = c.in(weight, "weight");
        Tensor tb = optional(c, bias, "bias", false);
        Tensor to = c.out(out, "out");
        c.run([&] { seisoku::conv2d(tx, tw, tb, to, stride_h, stride_w, pad_h, pad_w); });
      },
      arg("x"), arg("weight"), arg("bias").none(true), arg("out"), arg("stride_h"), arg("stride_w"), arg("pad_h"),
      arg("pad_w"), "out (N, O, Ho, Wo) = conv2d(x (N, C, H, W), weight (O, C, kh, kw)) + bias (O,) or None");
  m.def(
      "conv2d_backward",
      [](py::handle grad_out, py::handle x, py::handle weight, const py::object& grad_x, const py::object& grad_weight,
         const py::object& grad_bias, std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h,
         std::int64_t pad_w, bool accumulate) {
        Call c("conv2d_backward");
        Tensor tg = c.in(grad_out, "grad_out"), tx = c.in(x, "x"), tw = c.in(weight, "weight");
        Tensor tgx = optional(c, grad_x, "grad_x", true);
        Tensor tgw = optional(c, grad_weight, "grad_weight", true);
        Tensor tgb = optional(c, grad_bias, "grad_bias", true);
        c.run([&] {
          seisoku::conv2d_backward(tg, tx, tw, tgx, tgw, tgb, stride_h, stride_w, pad_h, pad_w, accumulate);
        });
      },
      arg("grad_out"), arg("x"), arg("weight"), arg("grad_x").none(true), arg("grad_weight").none(true),
      arg("grad_bias").none(true), arg("stride_h"), arg("stride_w"), arg("pad_h"), arg("pad_w"),
      arg("accumulate"),
      "Gradients of conv2d; None skips one. grad_x is overwritten, grad_weight and grad_bias are added into "
      "when accumulate");
}

}  // namespace seisoku::python
