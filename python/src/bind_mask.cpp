// Bindings of the mask family (seisoku.nn.functional: dropout, gaussian_noise). Outputs are new
// arrays unless `out` names one.
#include "nn_util.hpp"
#include "seisoku/mask.hpp"

namespace seisoku::python {

void bind_mask(py::module_& m) {
  using py::arg;
  m.def(
      "dropout",
      [](py::handle x, py::handle p, py::handle seed, py::handle offset, py::handle scale, py::handle out,
         py::handle first) {
        const char* op = "dropout";
        const double pv = real_arg(p, op, "p");
        const double sv = scale.is_none() ? (pv >= 0.0 && pv < 1.0 ? 1.0 / (1.0 - pv) : 1.0) : real_arg(scale, op, "scale");
        const std::uint64_t s = u64_arg(seed, op, "seed"), o = u64_arg(offset, op, "offset");
        const std::uint64_t f = u64_arg(first, op, "first");
        Call c(op);
        const Tensor tx = c.in(x, "x");
        py::object result;
        const Tensor to = output(c, out, "out", tx.shape(), tx, &result);
        c.run([&] { seisoku::dropout(tx, to, pv, s, o, sv, f); });
        return result;
      },
      arg("x"), arg("p"), arg("seed"), arg("offset"), arg("scale") = py::none(), arg("out") = py::none(),
      arg("first") = 0,
      R"doc(x * mask * scale with the mask drawn from the Philox stream (seed, offset) (see seisoku/mask.hpp).

p in [0, 1); scale defaults to 1 / (1 - p) (inverted dropout). Applied to a gradient with the same
(seed, offset), it is the backward pass. out may be x. first (default 0) is the stream element of
x's element 0: rows [r, r + n) of a batch of rows of F elements, given first = r * F, draw what
those rows draw in the whole batch.)doc");
  m.def(
      "gaussian_noise",
      [](py::handle x, py::handle std, py::handle seed, py::handle offset, py::handle out) {
        const char* op = "gaussian_noise";
        const double sd = real_arg(std, op, "std");
        const std::uint64_t s = u64_arg(seed, op, "seed"), o = u64_arg(offset, op, "offset");
        Call c(op);
        const Tensor tx = c.in(x, "x");
        py::object result;
        const Tensor to = output(c, out, "out", tx.shape(), tx, &result);
        c.run([&] { seisoku::gaussian_noise(tx, to, sd, s, o); });
        return result;
      },
      arg("x"), arg("std"), arg("seed"), arg("offset"), arg("out") = py::none(),
      "x + N(0, std**2) from the Philox stream (seed, offset); out may be x.");
}

}  // namespace seisoku::python
