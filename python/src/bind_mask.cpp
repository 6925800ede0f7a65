#include "convert.hpp"
#include "seisoku/mask.hpp"

namespace seisoku::python {

void bind_mask(py::module_& m) {
  using py::arg;
  m.def(
      "dropout",
      [](py::handle x, py::handle out, double p, std::uint64_t seed, std::uint64_t offset, double scale) {
        Call c("dropout");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::dropout(tx, to, p, seed, offset, scale); });
      },
      arg("x"), arg("out"), arg("p"), arg("seed"), arg("offset"), arg("scale"));
  m.def(
      "gaussian_noise",
      [](py::handle x, py::handle out, double stddev, std::uint64_t seed, std::uint64_t offset) {
        Call c("gaussian_noise");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::gaussian_noise(tx, to, stddev, seed, offset); });
      },
      arg("x"), arg("out"), arg("stddev"), arg("seed"), arg("offset"));
}

}  // namespace seisoku::python
