#include "convert.hpp"

#include <pybind11/numpy.h>

#include <string>

namespace seisoku::python {
namespace {

[[noreturn]] void reject(const char* op, const char* arg, const std::string& why) {
  throw py::value_error(std::string("[") + op + "] argument '" + arg + "' " + why);
}

// The dtype of a NumPy kind character and item size; false when unsupported.
bool dtype_from_kind(char kind, long size, DType* out) {
  struct Entry {
    char kind;
    long size;
    DType dtype;
  };
  static constexpr Entry kTable[] = {
      {'f', 4, DType::float32}, {'f', 8, DType::float64}, {'f', 2, DType::float16}, {'i', 1, DType::int8},
      {'i', 2, DType::int16},   {'i', 4, DType::int32},   {'i', 8, DType::int64},   {'u', 1, DType::uint8}};
  for (const Entry& e : kTable)
    if (e.kind == kind && e.size == size) {
      *out = e.dtype;
      return true;
    }
  return false;
}

DType dtype_from_numpy(const py::dtype& dt, const char* op, const char* arg) {
  // kind and itemsize are C fields; dtype.name is computed in Python, so it is read only for
  // the rare kinds that need it (bfloat16 from ml_dtypes is kind 'V', and error messages).
  const char kind = dt.kind();
  const auto size = static_cast<long>(dt.itemsize());
  if (kind == 'V' && size == 2 && py::str(dt.attr("name")).cast<std::string>() == "bfloat16") return DType::bfloat16;
  DType dtype;
  if (dtype_from_kind(kind, size, &dtype)) {
    if (dt.byteorder() == '>')
      reject(op, arg, "is big-endian (" + py::str(dt.attr("name")).cast<std::string>() +
                          "); convert with .astype(x.dtype.newbyteorder('='))");
    return dtype;
  }
  reject(op, arg, "has unsupported dtype " + py::str(dt.attr("name")).cast<std::string>() +
                      " (supported: float32, float64, float16, bfloat16, int8, uint8, int16, int32, int64)");
}

DType dtype_from_typestr(const std::string& ts, const char* op, const char* arg) {
  DType dtype;
  if (ts.size() >= 3 && ts[0] != '>' && dtype_from_kind(ts[1], std::stol(ts.substr(2)), &dtype)) return dtype;
  reject(op, arg, "has unsupported typestr '" + ts + "'");
}

Tensor from_cuda_interface(py::handle obj, const char* op, const char* arg, bool writable, void** stream_hint) {
  const py::dict cai = obj.attr("__cuda_array_interface__");
  Shape shape;
  for (py::handle s : py::tuple(cai["shape"])) shape.push_back(s.cast<std::int64_t>());
  const DType dtype = dtype_from_typestr(py::str(cai["typestr"]), op, arg);
  const py::tuple data = cai["data"];
  const auto ptr = data[0].cast<std::uintptr_t>();
  if (writable && data[1].cast<bool>()) reject(op, arg, "is read-only but is written to");
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    const py::tuple strides = cai["strides"];
    std::int64_t expect = static_cast<std::int64_t>(itemsize(dtype));
    for (std::size_t i = shape.size(); i-- > 0;) {
      if (shape[i] != 1 && strides[i].cast<std::int64_t>() != expect)
        reject(op, arg, "must be C-contiguous; make it so with cupy.ascontiguousarray");
      expect *= shape[i];
    }
  }
  if (stream_hint && cai.contains("stream") && !cai["stream"].is_none())
    *stream_hint = reinterpret_cast<void*>(cai["stream"].cast<std::uintptr_t>());
  void* p = reinterpret_cast<void*>(ptr);
  const int device = (ptr == 0 || shape_numel(shape) == 0) ? 0 : cuda::pointer_device(p);
  return Tensor::view(p, shape, dtype, Device::cuda, device);
}

}  // namespace

Tensor as_tensor(py::handle obj, const char* op, const char* arg, bool writable, void** stream_hint) {
  if (py::hasattr(obj, "__cuda_array_interface__")) return from_cuda_interface(obj, op, arg, writable, stream_hint);
  if (!py::isinstance<py::array>(obj))
    reject(op, arg, std::string("must be a NumPy or CuPy array, got ") + py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  auto a = py::reinterpret_borrow<py::array>(obj);
  const DType dtype = dtype_from_numpy(a.dtype(), op, arg);
  if (!(a.flags() & py::array::c_style))
    reject(op, arg, "must be C-contiguous; make it so with numpy.ascontiguousarray");
  if (writable && !a.writeable()) reject(op, arg, "is read-only but is written to");
  Shape shape(a.shape(), a.shape() + a.ndim());
  void* p = writable ? a.mutable_data() : const_cast<void*>(a.data());
  return Tensor::view(p, shape, dtype, Device::cpu, 0);
}

void* Call::current_stream() const {
  // CuPy's current stream when CuPy is in use, else the producer's stream, else the default.
  const py::dict modules = py::module_::import("sys").attr("modules");
  if (modules.contains("cupy")) {
    const py::object s = modules["cupy"].attr("cuda").attr("get_current_stream")();
    return reinterpret_cast<void*>(s.attr("ptr").cast<std::uintptr_t>());
  }
  return stream_hint_;
}

}  // namespace seisoku::python
