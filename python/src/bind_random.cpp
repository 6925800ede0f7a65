#include "convert.hpp"
#include "seisoku/philox.hpp"
#include "seisoku/random.hpp"

namespace seisoku::python {

void bind_random(py::module_& m) {
  using py::arg;
  m.def(
      "uniform",
      [](py::handle out, std::uint64_t seed, std::uint64_t offset, double low, double high) {
        Call c("uniform");
        Tensor t = c.out(out, "out");
        c.run([&] { seisoku::uniform(t, seed, offset, low, high); });
      },
      arg("out"), arg("seed"), arg("offset"), arg("low") = 0.0, arg("high") = 1.0);
  m.def(
      "normal",
      [](py::handle out, std::uint64_t seed, std::uint64_t offset, double mean, double stddev) {
        Call c("normal");
        Tensor t = c.out(out, "out");
        c.run([&] { seisoku::normal(t, seed, offset, mean, stddev); });
      },
      arg("out"), arg("seed"), arg("offset"), arg("mean") = 0.0, arg("stddev") = 1.0);
  m.def(
      "bernoulli",
      [](py::handle out, std::uint64_t seed, std::uint64_t offset, double p) {
        Call c("bernoulli");
        Tensor t = c.out(out, "out");
        c.run([&] { seisoku::bernoulli(t, seed, offset, p); });
      },
      arg("out"), arg("seed"), arg("offset"), arg("p"));
  m.def(
      "philox4x32_10",
      [](std::uint64_t seed, std::uint64_t offset, std::uint64_t block) {
        const philox::Block r = philox::draw(seed, offset, block);
        return py::make_tuple(r.v[0], r.v[1], r.v[2], r.v[3]);
      },
      arg("seed"), arg("offset"), arg("block"), "The 4 raw 32-bit words of one Philox block.");
}

}  // namespace seisoku::python
