// Bindings of the linear family (seisoku.nn.functional: linear, bias_act_dropout and the backward
// passes). Outputs are new arrays unless named.
#include "nn_util.hpp"
#include "seisoku/linear.hpp"

namespace seisoku::python {
namespace {

Epilogue epilogue_arg(const char* op, py::handle activation, py::handle slope, py::handle p, py::handle scale,
                      py::handle seed, py::handle offset) {
  Epilogue e;
  e.activation = activation_arg(activation, op);
  e.slope = real_arg(slope, op, "slope");
  e.dropout_p = real_arg(p, op, "dropout_p");
  e.dropout_scale = scale.is_none() ? (e.dropout_p >= 0.0 && e.dropout_p < 1.0 ? 1.0 / (1.0 - e.dropout_p) : 1.0)
                                    : real_arg(scale, op, "dropout_scale");
  e.seed = u64_arg(seed, op, "seed");
  e.offset = u64_arg(offset, op, "offset");
  return e;
}

}  // namespace

void bind_linear(py::module_& m) {
  using py::arg;
  m.def(
      "linear",
      [](py::handle x, py::handle weight, py::handle bias, py::handle activation, py::handle slope, py::handle p,
         py::handle scale, py::handle seed, py::handle offset, py::handle out) {
        const char* op = "linear";
        const Epilogue e = epilogue_arg(op, activation, slope, p, scale, seed, offset);
        Call c(op);
        const Tensor tx = c.in(x, "x"), tw = c.in(weight, "weight"), tb = c.opt_in(bias, "bias");
        if (out.is_none() && (tx.dim() != 2 || tw.dim() != 2))
          throw py::value_error("[linear] x and weight must be 2-D, got shapes " + shape_str(tx.shape()) + " and " +
                                shape_str(tw.shape()));
        py::object result;
        const Tensor to = output(c, out, "out", {tx.shape()[0], tw.shape()[0]}, tx, &result);
        c.run([&] { seisoku::linear(tx, tw, tb, to, e); });
        return result;
      },
      arg("x"), arg("weight"), arg("bias") = py::none(), py::kw_only(), arg("activation") = py::none(),
      arg("slope") = 0.01, arg("dropout_p") = 0.0, arg("dropout_scale") = py::none(), arg("seed") = 0,
      arg("offset") = 0, arg("out") = py::none(),
      R"doc(dropout(act(x @ weight.T + bias)) with the epilogue fused into one pass.

weight (out_features, in_features); the dropout mask comes from the Philox stream (seed, offset),
dropout_scale defaults to 1 / (1 - dropout_p). On the CPU, an x that is mostly zeros is
multiplied over its nonzeros only where that beats the dense product (see seisoku.nn.Linear).)doc");
  m.def(
      "bias_act_dropout",
      [](py::handle z, py::handle bias, py::handle activation, py::handle slope, py::handle p, py::handle scale,
         py::handle seed, py::handle offset, py::handle out) {
        const char* op = "bias_act_dropout";
        const Epilogue e = epilogue_arg(op, activation, slope, p, scale, seed, offset);
        Call c(op);
        const Tensor tz = c.in(z, "z"), tb = c.opt_in(bias, "bias");
        py::object result;
        const Tensor to = output(c, out, "out", tz.shape(), tz, &result);
        c.run([&] { seisoku::bias_act_dropout(tz, tb, to, e); });
        return result;
      },
      arg("z"), arg("bias") = py::none(), py::kw_only(), arg("activation") = py::none(), arg("slope") = 0.01,
      arg("dropout_p") = 0.0, arg("dropout_scale") = py::none(), arg("seed") = 0, arg("offset") = 0,
      arg("out") = py::none(), "dropout(act(z + bias)) over the rows of z (N, F) in one pass (out may be z).");
  m.def(
      "bias_act_dropout_backward",
      [](py::handle grad_out, py::handle y, py::handle activation, py::handle slope, py::handle p, py::handle scale,
         py::handle seed, py::handle offset, py::handle out) {
        const char* op = "bias_act_dropout_backward";
        const Epilogue e = epilogue_arg(op, activation, slope, p, scale, seed, offset);
        Call c(op);
        const Tensor tg = c.in(grad_out, "grad_out"), ty = c.in(y, "y");
        py::object result;
        const Tensor to = output(c, out, "out", ty.shape(), ty, &result);
        c.run([&] { seisoku::bias_act_dropout_backward(tg, ty, to, e); });
        return result;
      },
      arg("grad_out"), arg("y"), py::kw_only(), arg("activation") = py::none(), arg("slope") = 0.01,
      arg("dropout_p") = 0.0, arg("dropout_scale") = py::none(), arg("seed") = 0, arg("offset") = 0,
      arg("out") = py::none(),
      "The gradient through the fused epilogue (dropout, activation), from its output y and the same mask.");
  m.def(
      "linear_backward",
      [](py::handle grad_z, py::handle x, py::handle weight, bool need_grad_x, py::handle grad_weight,
         py::handle grad_bias, bool accumulate, py::handle grad_x) {
        Call c("linear_backward");
        const Tensor tg = c.in(grad_z, "grad_z"), tx = c.in(x, "x"), tw = c.in(weight, "weight");
        const Tensor gw = c.opt_out(grad_weight, "grad_weight"), gb = c.opt_out(grad_bias, "grad_bias");
        py::object result = py::none();
        const Tensor gx = need_grad_x ? output(c, grad_x, "grad_x", tx.shape(), tx, &result) : Tensor();
        c.run([&] { seisoku::linear_backward(tg, tx, tw, gx, gw, gb, accumulate); });
        return result;
      },
      arg("grad_z"), arg("x"), arg("weight"), py::kw_only(), arg("need_grad_x") = true,
      arg("grad_weight") = py::none(), arg("grad_bias") = py::none(), arg("accumulate") = false,
      arg("grad_x") = py::none(),
      R"doc(Backward of linear from grad_z (the gradient before the epilogue).

Returns grad_x (x's shape; into `grad_x` when given; None unless need_grad_x) and writes
grad_weight and grad_bias when given (added to their contents when accumulate). On the CPU a
grad_z that is mostly zeros is multiplied over its nonzeros only where that beats the dense product.)doc");
}

}  // namespace seisoku::python
