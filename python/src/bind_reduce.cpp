#include "convert.hpp"
#include "seisoku/reduce.hpp"

namespace seisoku::python {

void bind_reduce(py::module_& m) {
  using py::arg;
  auto def_plain = [&m](const char* name, void (*op)(const Tensor&, const Tensor&), const char* doc) {
    m.def(
        name,
        [name, op](py::handle x, py::handle out) {
          Call c(name);
          Tensor tx = c.in(x, "x"), to = c.out(out, "out");
          c.run([&] { op(tx, to); });
        },
        arg("x"), arg("out"), doc);
  };
  def_plain("sum", &seisoku::sum, "out[0] = sum of x");
  def_plain("mean", &seisoku::mean, "out[0] = mean of x");
  def_plain("max", &seisoku::max, "out[0] = max of x (NaN if any NaN)");
  auto def_norm = [&m](const char* name, void (*op)(const Tensor&, double, const Tensor&), const char* doc) {
    m.def(
        name,
        [name, op](py::handle x, double ord, py::handle out) {
          Call c(name);
          Tensor tx = c.in(x, "x"), to = c.out(out, "out");
          c.run([&] { op(tx, ord, to); });
        },
        arg("x"), arg("ord"), arg("out"), doc);
  };
  def_norm("norm", &seisoku::norm, "out[0] = L0 count, L1, L2 or Linf norm of x");
  def_norm("row_norm", &seisoku::row_norm, "out[r] = norm of row r of x");
  m.def(
      "column_sum",
      [](py::handle x, py::handle out, bool accumulate) {
        Call c("column_sum");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::column_sum(tx, to, accumulate); });
      },
      arg("x"), arg("out"), arg("accumulate") = false, "out (+)= sum of the rows of x");
}

}  // namespace seisoku::python
