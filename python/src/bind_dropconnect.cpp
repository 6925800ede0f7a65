// Binding of DropConnect's Gaussian inference op.
#include "convert.hpp"
#include "nn_util.hpp"
#include "seisoku/dropconnect.hpp"

namespace seisoku::python {

void bind_dropconnect(py::module_& m) {
  using py::arg;
  m.def(
      "dropconnect_gaussian",
      [](py::handle mean, py::handle var, py::handle out, py::handle activation, double slope, std::int64_t samples,
         std::uint64_t seed, std::uint64_t offset) {
        const Activation act = activation_arg(activation, "dropconnect_gaussian");
        Call c("dropconnect_gaussian");
        Tensor tm = c.in(mean, "mean"), tv = c.in(var, "var"), to = c.out(out, "out");
        c.run([&] { seisoku::dropconnect_gaussian(tm, tv, to, act, slope, samples, seed, offset); });
      },
      arg("mean"), arg("var"), arg("out"), arg("activation"), arg("slope"), arg("samples"), arg("seed"),
      arg("offset"), "out = mean over `samples` draws of act(mean + sqrt(var) * e) (see seisoku/dropconnect.hpp)");
}

}  // namespace seisoku::python
