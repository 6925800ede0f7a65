// Bindings of the penalty family (seisoku.nn.functional: activity_penalty, tying_penalty).
#include "nn_util.hpp"
#include "seisoku/penalty.hpp"

namespace seisoku::python {

void bind_penalty(py::module_& m) {
  using py::arg;
  m.def(
      "activity_penalty",
      [](py::handle x, py::handle lam, py::handle ord, py::handle grad) {
        const char* op = "activity_penalty";
        const double l = real_arg(lam, op, "lam");
        const auto o = static_cast<int>(int_arg(ord, op, "ord", 1, 2));
        Call c(op);
        const Tensor tx = c.in(x, "x"), tg = c.out(grad, "grad");
        const Tensor value = Tensor::empty({}, tx.dtype(), tx.device(), tx.device_index());
        c.run([&] { seisoku::activity_penalty(tx, l, o, tg, value); });
        return to_python(value);
      },
      arg("x"), arg("lam"), arg("ord"), arg("grad"),
      "Adds the gradient of lam / N * sum|x| (ord 1) or lam / N * sum x**2 (ord 2) to grad; returns the penalty "
      "(0-d array).");
  m.def(
      "tying_penalty",
      [](py::handle a, py::handle b, py::handle lam, py::handle grad_a, py::handle grad_b) {
        const char* op = "tying_penalty";
        const double l = real_arg(lam, op, "lam");
        Call c(op);
        const Tensor ta = c.in(a, "a"), tb = c.in(b, "b"), ga = c.out(grad_a, "grad_a"), gb = c.out(grad_b, "grad_b");
        const Tensor value = Tensor::empty({}, ta.dtype(), ta.device(), ta.device_index());
        c.run([&] { seisoku::tying_penalty(ta, tb, l, ga, gb, value); });
        return to_python(value);
      },
      arg("a"), arg("b"), arg("lam"), arg("grad_a"), arg("grad_b"),
      "Adds the gradients of lam * ||a - b||**2 to grad_a and grad_b; returns its value (0-d array).");
}

}  // namespace seisoku::python
