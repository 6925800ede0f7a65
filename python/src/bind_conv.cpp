// Bindings of the convolution family (seisoku.nn.functional: conv2d, conv2d_backward,
// conv2d_shape). stride and padding are an int or an (h, w) pair, in pixels.
#include <pybind11/stl.h>

#include "nn_util.hpp"
#include "seisoku/conv.hpp"
#include "seisoku/elementwise.hpp"

namespace seisoku::python {
namespace {

py::tuple shape_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) t[i] = s[i];
  return t;
}

}  // namespace

void bind_conv(py::module_& m) {
  using py::arg;
  m.def(
      "conv2d_shape",
      [](py::handle x, py::handle weight, py::handle stride, py::handle padding) {
        const char* op = "conv2d";
        const auto [sh, sw] = pair_arg(stride, op, "stride", 1);
        const auto [ph, pw] = pair_arg(padding, op, "padding", 0);
        Call c(op);
        const Tensor tx = c.in(x, "x"), tw = c.in(weight, "weight");
        return shape_tuple(seisoku::conv2d_shape(tx, tw, sh, sw, ph, pw));
      },
      arg("x"), arg("weight"), arg("stride") = 1, arg("padding") = 0,
      "The (N, O, Ho, Wo) shape of conv2d(x, weight, stride=, padding=); ValueError for inputs conv2d rejects.");
  m.def(
      "conv2d",
      [](py::handle x, py::handle weight, py::handle bias, py::handle stride, py::handle padding, py::handle out) {
        const char* op = "conv2d";
        const auto [sh, sw] = pair_arg(stride, op, "stride", 1);
        const auto [ph, pw] = pair_arg(padding, op, "padding", 0);
        Call c(op);
        const Tensor tx = c.in(x, "x"), tw = c.in(weight, "weight"), tb = c.opt_in(bias, "bias");
        py::object result;
        const Tensor to = output(c, out, "out", seisoku::conv2d_shape(tx, tw, sh, sw, ph, pw), tx, &result);
        c.run([&] { seisoku::conv2d(tx, tw, tb, to, sh, sw, ph, pw); });
        return result;
      },
      arg("x"), arg("weight"), arg("bias") = py::none(), arg("stride") = 1, arg("padding") = 0,
      arg("out") = py::none(),
      R"doc(2-D convolution (cross-correlation, as in PyTorch) of x (N, C, H, W) with weight (O, C, kh, kw).

Plus bias (O,) when given; zero padding; output (N, O, Ho, Wo) with
Ho = (H + 2 * padding_h - kh) // stride_h + 1 (Wo likewise), a new array or `out`.)doc");
  m.def(
      "conv2d_backward",
      [](py::handle grad_out, py::handle x, py::handle weight, py::handle stride, py::handle padding,
         bool need_grad_x, py::handle grad_weight, py::handle grad_bias, bool need_grad_bias, bool accumulate,
         py::handle grad_x) {
        const char* op = "conv2d_backward";
        const auto [sh, sw] = pair_arg(stride, op, "stride", 1);
        const auto [ph, pw] = pair_arg(padding, op, "padding", 0);
        Call c(op);
        const Tensor tg = c.in(grad_out, "grad_out"), tx = c.in(x, "x"), tw = c.in(weight, "weight");
        py::object rx = py::none(), rw, rb = py::none();
        const Tensor gx = need_grad_x ? output(c, grad_x, "grad_x", tx.shape(), tx, &rx) : Tensor();
        const Tensor gw = output(c, grad_weight, "grad_weight", tw.shape(), tw, &rw);
        Tensor gb;
        if (!grad_bias.is_none() || need_grad_bias)
          gb = output(c, grad_bias, "grad_bias", tw.dim() >= 1 ? Shape{tw.shape()[0]} : Shape{0}, tw, &rb);
        if (accumulate) {  // new gradients start at zero
          if (grad_weight.is_none()) c.run([&] { fill(gw, 0.0); });
          if (grad_bias.is_none() && gb.defined()) c.run([&] { fill(gb, 0.0); });
        }
        c.run([&] { seisoku::conv2d_backward(tg, tx, tw, gx, gw, gb, sh, sw, ph, pw, accumulate); });
        return py::make_tuple(rx, rw, rb);
      },
      arg("grad_out"), arg("x"), arg("weight"), py::kw_only(), arg("stride") = 1, arg("padding") = 0,
      arg("need_grad_x") = true, arg("grad_weight") = py::none(), arg("grad_bias") = py::none(),
      arg("need_grad_bias") = true, arg("accumulate") = false, arg("grad_x") = py::none(),
      R"doc(Gradients of conv2d given grad_out (N, O, Ho, Wo): (grad_x, grad_weight, grad_bias).

stride and padding must be those of the forward call. grad_x (x's shape) is a new array (or the
given one) when need_grad_x, else None. grad_weight goes into the given array or a new one;
grad_bias into the given array, else a new one when need_grad_bias (pass False for a conv without
bias: None). With accumulate the weight and bias gradients are added into the given arrays (new
ones start at zero); grad_x is always overwritten. The same bits for any thread count.)doc");
}

}  // namespace seisoku::python
