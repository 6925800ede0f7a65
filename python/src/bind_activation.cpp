#include "convert.hpp"
#include "seisoku/activation.hpp"

namespace seisoku::python {

void bind_activation(py::module_& m) {
  using py::arg;
  m.def(
      "activation",
      [](py::handle x, py::handle out, const std::string& act, double slope) {
        const Activation a = activation_from_name(act);
        Call c("activation");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::activation(tx, to, a, slope); });
      },
      arg("x"), arg("out"), arg("activation"), arg("slope") = 0.01);
  m.def(
      "activation_backward",
      [](py::handle grad_out, py::handle y, py::handle grad_in, const std::string& act, double slope) {
        const Activation a = activation_from_name(act);
        Call c("activation_backward");
        Tensor tg = c.in(grad_out, "grad_out"), ty = c.in(y, "y"), ti = c.out(grad_in, "grad_in");
        c.run([&] { seisoku::activation_backward(tg, ty, ti, a, slope); });
      },
      arg("grad_out"), arg("y"), arg("grad_in"), arg("activation"), arg("slope") = 0.01);
  m.def(
      "softmax",
      [](py::handle x, py::handle out) {
        Call c("softmax");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::softmax(tx, to); });
      },
      arg("x"), arg("out"));
  m.def(
      "softmax_backward",
      [](py::handle grad_out, py::handle y, py::handle grad_in) {
        Call c("softmax_backward");
        Tensor tg = c.in(grad_out, "grad_out"), ty = c.in(y, "y"), ti = c.out(grad_in, "grad_in");
        c.run([&] { seisoku::softmax_backward(tg, ty, ti); });
      },
      arg("grad_out"), arg("y"), arg("grad_in"));
}

}  // namespace seisoku::python
