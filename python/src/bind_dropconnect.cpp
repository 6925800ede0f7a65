// Binding of DropConnect's Gaussian inference (seisoku.nn.functional.dropconnect_gaussian).
#include "nn_util.hpp"
#include "seisoku/dropconnect.hpp"

namespace seisoku::python {

void bind_dropconnect(py::module_& m) {
  using py::arg;
  m.def(
      "dropconnect_gaussian",
      [](py::handle mean, py::handle var, py::handle activation, py::handle slope, py::handle samples,
         py::handle seed, py::handle offset, py::handle out) {
        const char* op = "dropconnect_gaussian";
        const Activation act = activation_arg(activation, op);
        const double s = real_arg(slope, op, "slope");
        const std::int64_t n = int_arg(samples, op, "samples", 1);
        const std::uint64_t sd = u64_arg(seed, op, "seed"), of = u64_arg(offset, op, "offset");
        Call c(op);
        const Tensor tm = c.in(mean, "mean"), tv = c.in(var, "var");
        py::object result;
        const Tensor to = output(c, out, "out", tm.shape(), tm, &result);
        c.run([&] { seisoku::dropconnect_gaussian(tm, tv, to, act, s, n, sd, of); });
        return result;
      },
      arg("mean"), arg("var"), arg("activation") = py::none(), arg("slope") = 0.01, arg("samples") = 64,
      arg("seed") = 0, arg("offset") = 0, arg("out") = py::none(),
      R"doc(The Gaussian inference of a DropConnect layer: the mean over `samples` draws of act(mean + sqrt(var) * e).

mean and var: the moments of the pre-activation (one shape, float32 or float64, var >= 0); e:
standard normals of the Philox stream (seed, offset), element i using values i * samples ... of
the stream, so the result is the same bits on CPU and CUDA.)doc");
}

}  // namespace seisoku::python
