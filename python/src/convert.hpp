#pragma once
// NumPy / CuPy arrays to borrowed seisoku::Tensor views, zero-copy. Arrays must be
// C-contiguous, native-endian, of a supported dtype, and writable when written to; anything
// else is rejected with a ValueError naming the op and the argument (never silently copied).
#include <pybind11/pybind11.h>

#include <utility>

#include "seisoku/runtime.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::python {

namespace py = pybind11;

// A view of `obj` (a numpy.ndarray or any object with __cuda_array_interface__).
// `stream_hint` receives the producer's stream from the CUDA array interface, if any.
Tensor as_tensor(py::handle obj, const char* op, const char* arg, bool writable, void** stream_hint = nullptr);

// One native call: converts its arguments, then runs the op with the GIL released and, for
// CUDA tensors, on CuPy's current stream.
class Call {
 public:
  explicit Call(const char* op) : op_(op) {}
  Tensor in(py::handle obj, const char* arg) { return track(as_tensor(obj, op_, arg, false, &stream_hint_)); }
  Tensor out(py::handle obj, const char* arg) { return track(as_tensor(obj, op_, arg, true, &stream_hint_)); }
  // None gives an undefined Tensor ("not given").
  Tensor opt_in(py::handle obj, const char* arg) { return obj.is_none() ? Tensor() : in(obj, arg); }
  Tensor opt_out(py::handle obj, const char* arg) { return obj.is_none() ? Tensor() : out(obj, arg); }
  // A tensor converted earlier (cached views): run() then also follows its device.
  void uses(const Tensor& t) { cuda_ = cuda_ || t.is_cuda(); }

  template <class F>
  void run(F&& f) {
    void* stream = cuda_ ? current_stream() : nullptr;
    py::gil_scoped_release release;
    if (cuda_) {
      cuda::StreamGuard guard(stream);
      f();
    } else {
      f();
    }
  }

 private:
  Tensor track(Tensor t) {
    cuda_ = cuda_ || t.is_cuda();
    return t;
  }
  void* current_stream() const;

  const char* op_;
  bool cuda_ = false;
  void* stream_hint_ = nullptr;
};

void bind_tensor(py::module_& m);
void bind_elementwise(py::module_& m);
void bind_reduce(py::module_& m);
void bind_blas(py::module_& m);
void bind_random(py::module_& m);
void bind_runtime(py::module_& m);
void bind_activation(py::module_& m);
void bind_mask(py::module_& m);
void bind_linear(py::module_& m);
void bind_penalty(py::module_& m);
void bind_loss(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_optim(py::module_& m);
void bind_augment(py::module_& m);

}  // namespace seisoku::python
