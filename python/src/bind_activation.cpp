// Bindings of the activation family (seisoku.nn.functional: activation, softmax and their
// backward passes). Outputs are new arrays unless `out` names one.
#include "nn_util.hpp"
#include "seisoku/activation.hpp"

namespace seisoku::python {

void bind_activation(py::module_& m) {
  using py::arg;
  m.def(
      "activation",
      [](py::handle x, py::handle name, py::handle slope, py::handle out) {
        const char* op = "activation";
        const Activation act = activation_arg(name, op);
        const double s = real_arg(slope, op, "slope");
        Call c(op);
        const Tensor tx = c.in(x, "x");
        py::object result;
        const Tensor to = output(c, out, "out", tx.shape(), tx, &result);
        c.run([&] { seisoku::activation(tx, to, act, s); });
        return result;
      },
      arg("x"), arg("name"), arg("slope") = 0.01, arg("out") = py::none(),
      "act(x) for 'relu', 'leaky_relu' (negative slope `slope` >= 0, default 0.01), 'tanh', 'sigmoid' or "
      "'identity' (None); out may be x.");
  m.def(
      "activation_backward",
      [](py::handle grad_out, py::handle y, py::handle name, py::handle slope, py::handle out) {
        const char* op = "activation_backward";
        const Activation act = activation_arg(name, op);
        const double s = real_arg(slope, op, "slope");
        Call c(op);
        const Tensor tg = c.in(grad_out, "grad_out"), ty = c.in(y, "y");
        py::object result;
        const Tensor to = output(c, out, "out", ty.shape(), ty, &result);
        c.run([&] { seisoku::activation_backward(tg, ty, to, act, s); });
        return result;
      },
      arg("grad_out"), arg("y"), arg("name"), arg("slope") = 0.01, arg("out") = py::none(),
      "The gradient through an activation, from its output y (out may be grad_out).");
  m.def(
      "softmax",
      [](py::handle x, py::handle out) {
        Call c("softmax");
        const Tensor tx = c.in(x, "x");
        py::object result;
        const Tensor to = output(c, out, "out", tx.shape(), tx, &result);
        c.run([&] { seisoku::softmax(tx, to); });
        return result;
      },
      arg("x"), arg("out") = py::none(), "Softmax over the last axis.");
  m.def(
      "softmax_backward",
      [](py::handle grad_out, py::handle y, py::handle out) {
        Call c("softmax_backward");
        const Tensor tg = c.in(grad_out, "grad_out"), ty = c.in(y, "y");
        py::object result;
        const Tensor to = output(c, out, "out", ty.shape(), ty, &result);
        c.run([&] { seisoku::softmax_backward(tg, ty, to); });
        return result;
      },
      arg("grad_out"), arg("y"), arg("out") = py::none(), "The gradient through softmax, from its output y.");
}

}  // namespace seisoku::python
