// Bindings of the pooling family (seisoku.nn.functional: max_pool2d, avg_pool2d, their backward
// passes and pool2d_shape). kernel_size, stride (default: the kernel size) and padding are an int
// or an (h, w) pair, in pixels.
#include "nn_util.hpp"
#include "seisoku/pool.hpp"

namespace seisoku::python {
namespace {

struct Win {
  std::int64_t kh, kw, sh, sw, ph, pw;
};

Win window(const char* op, py::handle kernel, py::handle stride, py::handle padding) {
  const auto [kh, kw] = pair_arg(kernel, op, "kernel_size", 1);
  const auto [sh, sw] = stride.is_none() ? std::pair<std::int64_t, std::int64_t>{kh, kw} : pair_arg(stride, op, "stride", 1);
  const auto [ph, pw] = pair_arg(padding, op, "padding", 0);
  return {kh, kw, sh, sw, ph, pw};
}

Shape pooled(const char* op, const Tensor& x, const Win& w) {
  return seisoku::pool2d_shape(op, x, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw);
}

}  // namespace

void bind_pool(py::module_& m) {
  using py::arg;
  m.def(
      "pool2d_shape",
      [](const std::string& op, py::handle x, py::handle kernel, py::handle stride, py::handle padding) {
        if (op != "max_pool2d" && op != "avg_pool2d")
          throw py::value_error("[pool2d_shape] argument 'op' must be 'max_pool2d' or 'avg_pool2d', got '" + op + "'");
        const Win w = window(op.c_str(), kernel, stride, padding);
        Call c(op.c_str());
        const Shape s = pooled(op.c_str(), c.in(x, "x"), w);
        return py::make_tuple(s[0], s[1], s[2], s[3]);
      },
      arg("op"), arg("x"), arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0,
      "The (N, C, Ho, Wo) shape of op ('max_pool2d' or 'avg_pool2d') on x; ValueError for inputs it rejects.");
  m.def(
      "max_pool2d",
      [](py::handle x, py::handle kernel, py::handle stride, py::handle padding, py::handle out, py::handle indices) {
        const char* op = "max_pool2d";
        const Win w = window(op, kernel, stride, padding);
        Call c(op);
        const Tensor tx = c.in(x, "x");
        const Shape shape = pooled(op, tx, w);
        py::object ro, ri;
        const Tensor to = output(c, out, "out", shape, tx, &ro);
        const Tensor ti = output(c, indices, "indices", shape,
                                 Tensor::view(nullptr, {0}, DType::int64, tx.device(), tx.device_index()), &ri);
        c.run([&] { seisoku::max_pool2d(tx, to, ti, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw); });
        return py::make_tuple(ro, ri);
      },
      arg("x"), arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0, arg("out") = py::none(),
      arg("indices") = py::none(),
      R"doc(Max pooling of x (N, C, H, W): returns (out, indices), both (N, C, Ho, Wo).

padding at most half the kernel. indices (int64) holds the flat index h * W + w of each maximum
in its input plane: padding never wins, ties pick the first element in row-major window order,
and a NaN in the window wins (output NaN). out and indices: optional preallocated results.)doc");
  m.def(
      "max_pool2d_backward",
      [](py::handle grad_out, py::handle indices, py::handle x_shape, py::handle grad_x) {
        const char* op = "max_pool2d_backward";
        const Shape shape = shape4_arg(x_shape, op, "x_shape");
        Call c(op);
        const Tensor tg = c.in(grad_out, "grad_out"), ti = c.in(indices, "indices");
        py::object result;
        const Tensor tx = output(c, grad_x, "grad_x", shape, tg, &result);
        c.run([&] { seisoku::max_pool2d_backward(tg, ti, tx); });
        return result;
      },
      arg("grad_out"), arg("indices"), arg("x_shape"), arg("grad_x") = py::none(),
      "The gradient of max_pool2d, of x_shape (N, C, H, W): each input element sums the grad_out entries whose "
      "index points at it, in row-major output order (deterministic).");
  m.def(
      "avg_pool2d",
      [](py::handle x, py::handle kernel, py::handle stride, py::handle padding, bool count_include_pad,
         py::handle out) {
        const char* op = "avg_pool2d";
        const Win w = window(op, kernel, stride, padding);
        Call c(op);
        const Tensor tx = c.in(x, "x");
        py::object result;
        const Tensor to = output(c, out, "out", pooled(op, tx, w), tx, &result);
        c.run([&] { seisoku::avg_pool2d(tx, to, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, count_include_pad); });
        return result;
      },
      arg("x"), arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0, arg("count_include_pad") = true,
      arg("out") = py::none(),
      "Average pooling of x (N, C, H, W) with zero padding (at most half the kernel): each window's sum over "
      "kh * kw when count_include_pad (default), else over its elements inside the input.");
  m.def(
      "avg_pool2d_backward",
      [](py::handle grad_out, py::handle x_shape, py::handle kernel, py::handle stride, py::handle padding,
         bool count_include_pad, py::handle grad_x) {
        const char* op = "avg_pool2d_backward";
        const Shape shape = shape4_arg(x_shape, op, "x_shape");
        const Win w = window(op, kernel, stride, padding);
        Call c(op);
        const Tensor tg = c.in(grad_out, "grad_out");
        py::object result;
        const Tensor tx = output(c, grad_x, "grad_x", shape, tg, &result);
        c.run([&] { seisoku::avg_pool2d_backward(tg, tx, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, count_include_pad); });
        return result;
      },
      arg("grad_out"), arg("x_shape"), arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0,
      arg("count_include_pad") = true, arg("grad_x") = py::none(),
      "The gradient of avg_pool2d, of x_shape (N, C, H, W); the window arguments of the forward call.");
}

}  // namespace seisoku::python
