// The extension seisoku._core: one bind_* function per area.
#include "convert.hpp"

namespace seisoku::python {
void bind_sparse_linear(py::module_& m);  // after bind_nn: SparseLinear (seisoku._core.nn)
}  // namespace seisoku::python

PYBIND11_MODULE(_core, m) {
  m.doc() = "seisoku native core (C++/CUDA kernels over NumPy and CuPy arrays)";
  seisoku::python::bind_tensor(m);
  seisoku::python::bind_elementwise(m);
  seisoku::python::bind_reduce(m);
  seisoku::python::bind_blas(m);
  seisoku::python::bind_random(m);
  seisoku::python::bind_runtime(m);
  seisoku::python::bind_activation(m);
  seisoku::python::bind_mask(m);
  seisoku::python::bind_linear(m);
  seisoku::python::bind_penalty(m);
  seisoku::python::bind_loss(m);
  seisoku::python::bind_conv(m);
  seisoku::python::bind_pool(m);
  seisoku::python::bind_optim(m);
  seisoku::python::bind_augment(m);
  seisoku::python::bind_dropconnect(m);
  seisoku::python::bind_quant(m);
  seisoku::python::bind_nn(m);
  seisoku::python::bind_pipeline_schedule(m);
  seisoku::python::bind_sparse_linear(m);
  seisoku::python::bind_int8(m);
}
