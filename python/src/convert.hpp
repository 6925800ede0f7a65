#pragma once
// NumPy / CuPy arrays to seisoku::Tensor and back, zero-copy both ways.
//
// In: arrays must be C-contiguous, native-endian, of a supported dtype, and writable when
// written to; anything else is rejected with a ValueError naming the op and the argument (never
// silently copied). A plain conversion borrows the memory for the duration of one call; a kept
// conversion (for tensors a layer stores) holds the array alive: an array over seisoku's own
// memory shares that memory's owner, any other holds a reference to the Python object, released
// with the GIL (references dropped while the GIL is released are released at the next call).
//
// Out: a tensor becomes the very array it came from when it still covers all of it, else a NumPy
// (CPU) or CuPy (CUDA) array over its memory that keeps the memory alive.
#include <pybind11/pybind11.h>

#include <utility>

#include "seisoku/runtime.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::python {

namespace py = pybind11;

// A view of `obj` (a numpy.ndarray or any object with __cuda_array_interface__) for one call.
// `stream_hint` receives the producer's stream from the CUDA array interface, if any.
Tensor as_tensor(py::handle obj, const char* op, const char* arg, bool writable, void** stream_hint = nullptr);
// The same view, holding `obj` (or the seisoku memory under it) alive for as long as the tensor.
Tensor as_kept_tensor(py::handle obj, const char* op, const char* arg, bool writable, void** stream_hint = nullptr);
// A tensor over t's memory held alive by the Python array `obj` (which must view that memory).
Tensor kept_by(py::handle obj, const Tensor& t);
// Whether t is held alive by the Python object `obj` itself (a kept conversion of it).
bool held_by(const Tensor& t, py::handle obj);
// The array for a tensor (None for an undefined one): the array it came from when it covers all
// of it, else a new NumPy or CuPy array over its memory.
py::object to_python(const Tensor& t);
// Releases the references to Python objects that tensors dropped while the GIL was released.
void release_deferred();

// The NumPy dtype of a seisoku dtype (bfloat16 through ml_dtypes), and the reverse for any
// object numpy.dtype accepts (including names such as "float32").
py::object numpy_dtype(DType dtype);
DType dtype_of(py::handle obj, const char* op, const char* arg);
// "cpu" -> Device::cpu, "cuda" / "cuda:N" -> Device::cuda (N: device_index).
Device device_of(py::handle obj, const char* op, int* device_index);

// One native call: converts its arguments, then runs the op with the GIL released and, for
// CUDA tensors, on CuPy's current stream.
class Call {
 public:
  explicit Call(const char* op) : op_(op) { release_deferred(); }
  Tensor in(py::handle obj, const char* arg) { return track(as_tensor(obj, op_, arg, false, &stream_hint_)); }
  Tensor out(py::handle obj, const char* arg) { return track(as_tensor(obj, op_, arg, true, &stream_hint_)); }
  // An input the op keeps beyond the call (a layer's saved input).
  Tensor kept(py::handle obj, const char* arg) { return track(as_kept_tensor(obj, op_, arg, false, &stream_hint_)); }
  // None gives an undefined Tensor ("not given").
  Tensor opt_in(py::handle obj, const char* arg) { return obj.is_none() ? Tensor() : in(obj, arg); }
  Tensor opt_out(py::handle obj, const char* arg) { return obj.is_none() ? Tensor() : out(obj, arg); }
  Tensor opt_kept(py::handle obj, const char* arg) { return obj.is_none() ? Tensor() : kept(obj, arg); }
  // A tensor obtained otherwise (cached views, parameters): run() then also follows its device.
  void uses(const Tensor& t) { cuda_ = cuda_ || t.is_cuda(); }
  void uses(Device d) { cuda_ = cuda_ || d == Device::cuda; }

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
void bind_dropconnect(py::module_& m);
void bind_quant(py::module_& m);
void bind_pipeline_schedule(py::module_& m);  // seisoku._core.pipeline_schedule (no MPI)
void bind_nn(py::module_& m);         // Parameter, Module, containers (seisoku._core.nn)
void bind_nn_layers(py::module_& nn);  // the layers
void bind_nn_loss(py::module_& nn);    // the loss objects
void bind_int8(py::module_& m);        // int8 ops and layers (after bind_nn: adds to seisoku._core.nn)

}  // namespace seisoku::python
