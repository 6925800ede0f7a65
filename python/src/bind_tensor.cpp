// How an array is seen by the core: dtype, shape, device.
#include "convert.hpp"

namespace seisoku::python {

void bind_tensor(py::module_& m) {
  m.def(
      "describe", [](py::handle x) { return as_tensor(x, "describe", "x", false).describe(); }, py::arg("x"),
      "The tensor the core sees for array x, e.g. 'float32(2, 3) cpu'.");
}

}  // namespace seisoku::python
