#include <pybind11/stl.h>

#include "convert.hpp"
#include "seisoku/runtime.hpp"

namespace seisoku::python {

void bind_runtime(py::module_& m) {
  using py::arg;
  m.def("set_num_threads", &seisoku::set_num_threads, arg("n"));
  m.def("get_num_threads", &seisoku::get_num_threads);
  m.def("build_info", &seisoku::build_info);
  m.def("cuda_is_built", &seisoku::cuda::is_built);
  m.def("cuda_is_available", &seisoku::cuda::is_available);
  m.def("cuda_device_count", &seisoku::cuda::device_count);
  m.def("cuda_device_name", &seisoku::cuda::device_name, arg("index"));
  m.def("cuda_synchronize", &seisoku::cuda::synchronize, py::call_guard<py::gil_scoped_release>());
  m.def("cublas_library", &seisoku::cuda::cublas_library);
}

}  // namespace seisoku::python
