#include "convert.hpp"

#include <pybind11/numpy.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace seisoku::python {
namespace {

constexpr const char* kCapsuleName = "seisoku.Tensor";

// References to Python objects that tensors released while the GIL was released: released at
// the next call into the core (which holds the GIL).
std::mutex g_deferred_mutex;
std::vector<PyObject*> g_deferred;
std::atomic<bool> g_has_deferred{false};

// Deleter of a tensor's storage that is a Python object (the array it views).
struct PyRef {
  void operator()(void* p) const {
    if (p == nullptr || Py_IsInitialized() == 0) return;
    if (PyGILState_Check() != 0) {
      Py_DECREF(static_cast<PyObject*>(p));
      return;
    }
    const std::lock_guard<std::mutex> lock(g_deferred_mutex);
    g_deferred.push_back(static_cast<PyObject*>(p));
    g_has_deferred.store(true, std::memory_order_release);
  }
};

std::shared_ptr<void> hold(py::handle obj) {
  Py_INCREF(obj.ptr());
  return std::shared_ptr<void>(obj.ptr(), PyRef{});
}

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

void release_deferred() {
  if (!g_has_deferred.load(std::memory_order_acquire)) return;
  std::vector<PyObject*> objects;
  {
    const std::lock_guard<std::mutex> lock(g_deferred_mutex);
    objects.swap(g_deferred);
    g_has_deferred.store(false, std::memory_order_release);
  }
  for (PyObject* o : objects) Py_DECREF(o);
}

Tensor as_kept_tensor(py::handle obj, const char* op, const char* arg, bool writable, void** stream_hint) {
  const Tensor t = as_tensor(obj, op, arg, writable, stream_hint);
  if (!t.is_cuda()) {
    // An array over seisoku's memory (a layer's result) shares that memory's owner: no Python
    // reference to release later, and the layer that made it sees it held.
    PyObject* base = obj.ptr();
    for (int depth = 0; depth < 32 && base != nullptr && py::isinstance<py::array>(base); ++depth)
      base = py::detail::array_proxy(base)->base;
    if (base != nullptr && PyCapsule_IsValid(base, kCapsuleName) != 0) {
      const auto* owner = static_cast<const Tensor*>(PyCapsule_GetPointer(base, kCapsuleName));
      if (owner->storage()) return Tensor::view(t.data(), t.shape(), t.dtype(), t.device(), t.device_index(), owner->storage());
    }
  }
  return kept_by(obj, t);
}

Tensor kept_by(py::handle obj, const Tensor& t) {
  return Tensor::view(t.data(), t.shape(), t.dtype(), t.device(), t.device_index(), hold(obj));
}

bool held_by(const Tensor& t, py::handle obj) {
  const std::shared_ptr<void>& storage = t.storage();
  return storage && std::get_deleter<PyRef>(storage) != nullptr && storage.get() == obj.ptr();
}

namespace {

bool same_shape(py::handle shape, const Tensor& t) {
  const py::tuple s = py::reinterpret_borrow<py::tuple>(shape);
  if (static_cast<std::int64_t>(s.size()) != t.dim()) return false;
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i].cast<std::int64_t>() != t.shape()[i]) return false;
  return true;
}

// Whether the Python array `o` is exactly the memory, shape and dtype of t.
bool covers(py::handle o, const Tensor& t) {
  if (py::isinstance<py::array>(o)) {
    const auto a = py::reinterpret_borrow<py::array>(o);
    if (a.data() != t.data() || a.ndim() != t.dim() || !(a.flags() & py::array::c_style)) return false;
    for (std::int64_t i = 0; i < t.dim(); ++i)
      if (a.shape(i) != t.shape()[i]) return false;
    return a.dtype().equal(numpy_dtype(t.dtype()));
  }
  if (!t.is_cuda() || !py::hasattr(o, "data") || !py::hasattr(o, "shape")) return false;
  const py::object data = o.attr("data");
  return py::hasattr(data, "ptr") && data.attr("ptr").cast<std::uintptr_t>() == reinterpret_cast<std::uintptr_t>(t.data()) &&
         same_shape(o.attr("shape"), t) && py::object(o.attr("dtype")).equal(numpy_dtype(t.dtype()));
}

void delete_tensor(PyObject* capsule) {
  delete static_cast<Tensor*>(PyCapsule_GetPointer(capsule, kCapsuleName));
}

}  // namespace

py::object to_python(const Tensor& t) {
  if (!t.defined()) return py::none();
  release_deferred();
  const std::shared_ptr<void>& storage = t.storage();
  if (storage && std::get_deleter<PyRef>(storage) != nullptr) {
    const py::handle o(static_cast<PyObject*>(storage.get()));
    if (covers(o, t)) return py::reinterpret_borrow<py::object>(o);
  }
  const py::capsule owner(new Tensor(t), kCapsuleName, &delete_tensor);
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  if (!t.is_cuda()) {
    std::vector<py::ssize_t> strides(shape.size());
    py::ssize_t stride = static_cast<py::ssize_t>(itemsize(t.dtype()));
    for (std::size_t i = shape.size(); i-- > 0;) {
      strides[i] = stride;
      stride *= std::max<py::ssize_t>(shape[i], 1);
    }
    return py::array(py::reinterpret_borrow<py::dtype>(numpy_dtype(t.dtype())), shape, strides, t.data(), owner);
  }
  const py::module_ cupy = py::module_::import("cupy");
  const py::object memory = cupy.attr("cuda").attr("UnownedMemory")(
      reinterpret_cast<std::uintptr_t>(t.data()), t.nbytes(), owner, t.device_index());
  const py::object pointer = cupy.attr("cuda").attr("MemoryPointer")(memory, 0);
  return cupy.attr("ndarray")(py::tuple(py::cast(shape)), numpy_dtype(t.dtype()), pointer);
}

py::object numpy_dtype(DType dtype) {
  static PyObject* cache[9] = {};
  const auto k = static_cast<std::size_t>(dtype);
  if (cache[k] == nullptr) {
    py::object dt = dtype == DType::bfloat16
                        ? py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16"))
                        : py::dtype(dtype_name(dtype));
    cache[k] = dt.release().ptr();  // kept for the life of the process
  }
  return py::reinterpret_borrow<py::object>(cache[k]);
}

DType dtype_of(py::handle obj, const char* op, const char* arg) {
  if (py::isinstance<py::str>(obj)) {
    const std::string name = obj.cast<std::string>();
    try {
      return dtype_from_name(name);
    } catch (const std::invalid_argument&) {
      reject(op, arg, "must name a supported dtype (float32, float64, float16, bfloat16, int8, uint8, int16, int32, "
                      "int64), got '" + name + "'");
    }
  }
  py::dtype dt;
  try {
    dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(obj));
  } catch (const py::error_already_set&) {
    reject(op, arg, "must be a dtype, got " + py::repr(obj).cast<std::string>());
  }
  return dtype_from_numpy(dt, op, arg);
}

Device device_of(py::handle obj, const char* op, int* device_index) {
  *device_index = 0;
  if (py::isinstance<py::str>(obj)) {
    const std::string s = obj.cast<std::string>();
    if (s == "cpu") return Device::cpu;
    if (s == "cuda") return Device::cuda;
    if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.find_first_not_of("0123456789", 5) == std::string::npos) {
      *device_index = std::stoi(s.substr(5));
      return Device::cuda;
    }
  }
  reject(op, "device", "must be 'cpu', 'cuda' or 'cuda:N', got " + py::repr(obj).cast<std::string>());
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
