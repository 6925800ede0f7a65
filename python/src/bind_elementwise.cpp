#include "convert.hpp"
#include "seisoku/elementwise.hpp"

namespace seisoku::python {

void bind_elementwise(py::module_& m) {
  using py::arg;
  m.def(
      "add",
      [](py::handle a, py::handle b, py::handle out) {
        Call c("add");
        Tensor ta = c.in(a, "a"), tb = c.in(b, "b"), to = c.out(out, "out");
        c.run([&] { seisoku::add(ta, tb, to); });
      },
      arg("a"), arg("b"), arg("out"), "out = a + b");
  m.def(
      "mul",
      [](py::handle a, py::handle b, py::handle out) {
        Call c("mul");
        Tensor ta = c.in(a, "a"), tb = c.in(b, "b"), to = c.out(out, "out");
        c.run([&] { seisoku::mul(ta, tb, to); });
      },
      arg("a"), arg("b"), arg("out"), "out = a * b");
  m.def(
      "axpy",
      [](double alpha, py::handle x, py::handle y) {
        Call c("axpy");
        Tensor tx = c.in(x, "x"), ty = c.out(y, "y");
        c.run([&] { seisoku::axpy(alpha, tx, ty); });
      },
      arg("alpha"), arg("x"), arg("y"), "y += alpha * x");
  m.def(
      "axpy_sign",
      [](double alpha, py::handle x, py::handle y) {
        Call c("axpy_sign");
        Tensor tx = c.in(x, "x"), ty = c.out(y, "y");
        c.run([&] { seisoku::axpy_sign(alpha, tx, ty); });
      },
      arg("alpha"), arg("x"), arg("y"), "y += alpha * sign(x)");
  m.def(
      "scale",
      [](double alpha, py::handle x, py::handle out) {
        Call c("scale");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::scale(alpha, tx, to); });
      },
      arg("alpha"), arg("x"), arg("out"), "out = alpha * x");
  m.def(
      "fill",
      [](py::handle out, double value) {
        Call c("fill");
        Tensor to = c.out(out, "out");
        c.run([&] { seisoku::fill(to, value); });
      },
      arg("out"), arg("value"), "out[...] = value");
  m.def(
      "copy",
      [](py::handle src, py::handle dst) {
        Call c("copy");
        Tensor ts = c.in(src, "src"), td = c.out(dst, "dst");
        c.run([&] { seisoku::copy(ts, td); });
      },
      arg("src"), arg("dst"), "dst = src converted to dst's dtype");
}

}  // namespace seisoku::python
