#include "convert.hpp"
#include "seisoku/penalty.hpp"

namespace seisoku::python {

void bind_penalty(py::module_& m) {
  using py::arg;
  m.def(
      "activity_penalty",
      [](py::handle x, double lambda, int ord, py::handle grad, py::handle value) {
        Call c("activity_penalty");
        Tensor tx = c.in(x, "x"), tg = c.out(grad, "grad"), tv = c.out(value, "value");
        c.run([&] { seisoku::activity_penalty(tx, lambda, ord, tg, tv); });
      },
      arg("x"), arg("lam"), arg("ord"), arg("grad"), arg("value"));
  m.def(
      "tying_penalty",
      [](py::handle a, py::handle b, double lambda, py::handle grad_a, py::handle grad_b, py::handle value) {
        Call c("tying_penalty");
        Tensor ta = c.in(a, "a"), tb = c.in(b, "b"), ga = c.out(grad_a, "grad_a"), gb = c.out(grad_b, "grad_b"),
               tv = c.out(value, "value");
        c.run([&] { seisoku::tying_penalty(ta, tb, lambda, ga, gb, tv); });
      },
      arg("a"), arg("b"), arg("lam"), arg("grad_a"), arg("grad_b"), arg("value"));
}

}  // namespace seisoku::python
