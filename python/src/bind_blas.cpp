#include "convert.hpp"
#include "seisoku/blas.hpp"

namespace seisoku::python {

void bind_blas(py::module_& m) {
  using py::arg;
  m.def(
      "gemm",
      [](py::handle a, py::handle b, py::handle out, bool trans_a, bool trans_b, double alpha, double beta) {
        Call c("gemm");
        Tensor ta = c.in(a, "a"), tb = c.in(b, "b"), tc = c.out(out, "out");
        c.run([&] { seisoku::gemm(ta, tb, tc, trans_a, trans_b, alpha, beta); });
      },
      arg("a"), arg("b"), arg("out"), arg("trans_a") = false, arg("trans_b") = false, arg("alpha") = 1.0,
      arg("beta") = 0.0, "out = alpha * op(a) @ op(b) + beta * out");
}

}  // namespace seisoku::python
