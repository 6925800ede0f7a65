#include "convert.hpp"
#include "seisoku/linear.hpp"

namespace seisoku::python {
namespace {

Epilogue make_epilogue(const std::string& act, double slope, double p, double scale, std::uint64_t seed,
                       std::uint64_t offset) {
  Epilogue e;
  e.activation = activation_from_name(act);
  e.slope = slope;
  e.dropout_p = p;
  e.dropout_scale = scale;
  e.seed = seed;
  e.offset = offset;
  return e;
}

}  // namespace

void bind_linear(py::module_& m) {
  using py::arg;
  m.def(
      "linear",
      [](py::handle x, py::handle weight, py::handle bias, py::handle out, const std::string& act, double slope,
         double p, double scale, std::uint64_t seed, std::uint64_t offset) {
        const Epilogue e = make_epilogue(act, slope, p, scale, seed, offset);
        Call c("linear");
        Tensor tx = c.in(x, "x"), tw = c.in(weight, "weight"), tb = c.opt_in(bias, "bias"), to = c.out(out, "out");
        c.run([&] { seisoku::linear(tx, tw, tb, to, e); });
      },
      arg("x"), arg("weight"), arg("bias"), arg("out"), arg("activation") = "identity", arg("slope") = 0.01,
      arg("dropout_p") = 0.0, arg("dropout_scale") = 1.0, arg("seed") = 0, arg("offset") = 0);
  m.def(
      "bias_act_dropout",
      [](py::handle z, py::handle bias, py::handle out, const std::string& act, double slope, double p, double scale,
         std::uint64_t seed, std::uint64_t offset) {
        const Epilogue e = make_epilogue(act, slope, p, scale, seed, offset);
        Call c("bias_act_dropout");
        Tensor tz = c.in(z, "z"), tb = c.opt_in(bias, "bias"), to = c.out(out, "out");
        c.run([&] { seisoku::bias_act_dropout(tz, tb, to, e); });
      },
      arg("z"), arg("bias"), arg("out"), arg("activation") = "identity", arg("slope") = 0.01, arg("dropout_p") = 0.0,
      arg("dropout_scale") = 1.0, arg("seed") = 0, arg("offset") = 0);
  m.def(
      "bias_act_dropout_backward",
      [](py::handle grad_out, py::handle y, py::handle grad_z, const std::string& act, double slope, double p,
         double scale, std::uint64_t seed, std::uint64_t offset) {
        const Epilogue e = make_epilogue(act, slope, p, scale, seed, offset);
        Call c("bias_act_dropout_backward");
        Tensor tg = c.in(grad_out, "grad_out"), ty = c.in(y, "y"), tz = c.out(grad_z, "grad_z");
        c.run([&] { seisoku::bias_act_dropout_backward(tg, ty, tz, e); });
      },
      arg("grad_out"), arg("y"), arg("grad_z"), arg("activation") = "identity", arg("slope") = 0.01,
      arg("dropout_p") = 0.0, arg("dropout_scale") = 1.0, arg("seed") = 0, arg("offset") = 0);
  m.def(
      "linear_backward",
      [](py::handle grad_z, py::handle x, py::handle weight, py::handle grad_x, py::handle grad_weight,
         py::handle grad_bias, bool accumulate) {
        Call c("linear_backward");
        Tensor tg = c.in(grad_z, "grad_z"), tx = c.in(x, "x"), tw = c.in(weight, "weight");
        Tensor gx = c.opt_out(grad_x, "grad_x"), gw = c.opt_out(grad_weight, "grad_weight"),
               gb = c.opt_out(grad_bias, "grad_bias");
        c.run([&] { seisoku::linear_backward(tg, tx, tw, gx, gw, gb, accumulate); });
      },
      arg("grad_z"), arg("x"), arg("weight"), arg("grad_x"), arg("grad_weight"), arg("grad_bias"),
      arg("accumulate") = false);
}

}  // namespace seisoku::python
