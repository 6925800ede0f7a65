#include "convert.hpp"
#include "seisoku/conv.hpp"

namespace seisoku::python {

void bind_conv(py::module_& m) {
  using py::arg;
  m.def(
      "conv2d",
      [](py::handle x, py::handle weight, const py::object& bias, py::handle out, std::int64_t stride_h,
         std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
        Call c("conv2d");
        Tensor tx = c.in(x, "x"), tw = c.in(weight, "weight");
        Tensor tb = c.opt_in(bias, "bias");
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
        Tensor tgx = c.opt_out(grad_x, "grad_x");
        Tensor tgw = c.opt_out(grad_weight, "grad_weight");
        Tensor tgb = c.opt_out(grad_bias, "grad_bias");
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
