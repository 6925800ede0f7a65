#include "convert.hpp"
#include "seisoku/pool.hpp"

namespace seisoku::python {

void bind_pool(py::module_& m) {
  using py::arg;
  m.def(
      "max_pool2d",
      [](py::handle x, py::handle out, py::handle indices, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
         std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
        Call c("max_pool2d");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out"), ti = c.out(indices, "indices");
        c.run([&] { seisoku::max_pool2d(tx, to, ti, kh, kw, stride_h, stride_w, pad_h, pad_w); });
      },
      arg("x"), arg("out"), arg("indices"), arg("kh"), arg("kw"), arg("stride_h"), arg("stride_w"), arg("pad_h"),
      arg("pad_w"), "Window maxima of x into out and their flat in-plane indices (int64) into indices");
  m.def(
      "max_pool2d_backward",
      [](py::handle grad_out, py::handle indices, py::handle grad_x) {
        Call c("max_pool2d_backward");
        Tensor tg = c.in(grad_out, "grad_out"), ti = c.in(indices, "indices"), tgx = c.out(grad_x, "grad_x");
        c.run([&] { seisoku::max_pool2d_backward(tg, ti, tgx); });
      },
      arg("grad_out"), arg("indices"), arg("grad_x"), "grad_x = grad_out routed back through indices");
  m.def(
      "avg_pool2d",
      [](py::handle x, py::handle out, std::int64_t kh, std::int64_t kw, std::int64_t stride_h, std::int64_t stride_w,
         std::int64_t pad_h, std::int64_t pad_w, bool count_include_pad) {
        Call c("avg_pool2d");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::avg_pool2d(tx, to, kh, kw, stride_h, stride_w, pad_h, pad_w, count_include_pad); });
      },
      arg("x"), arg("out"), arg("kh"), arg("kw"), arg("stride_h"), arg("stride_w"), arg("pad_h"), arg("pad_w"),
      arg("count_include_pad"), "Window means of x into out");
  m.def(
      "avg_pool2d_backward",
      [](py::handle grad_out, py::handle grad_x, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
         std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w, bool count_include_pad) {
        Call c("avg_pool2d_backward");
        Tensor tg = c.in(grad_out, "grad_out"), tgx = c.out(grad_x, "grad_x");
        c.run([&] {
          seisoku::avg_pool2d_backward(tg, tgx, kh, kw, stride_h, stride_w, pad_h, pad_w, count_include_pad);
        });
      },
      arg("grad_out"), arg("grad_x"), arg("kh"), arg("kw"), arg("stride_h"), arg("stride_w"), arg("pad_h"),
      arg("pad_w"), arg("count_include_pad"), "grad_x of avg_pool2d given grad_out");
}

}  // namespace seisoku::python
