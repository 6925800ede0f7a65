#pragma once
// Shared by the nn bindings: Python arguments to the C++ options (with the one message format
// "[Layer] argument 'x' must be ..., got ..."), and the forward / backward calls of a module.
#include <pybind11/pybind11.h>

#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "convert.hpp"
#include "seisoku/activation.hpp"
#include "seisoku/nn.hpp"

namespace seisoku::python {

[[noreturn]] inline void bad_argument(const char* op, const char* name, const std::string& must, py::handle value) {
  throw py::value_error(std::string("[") + op + "] argument '" + name + "' must be " + must + ", got " +
                        py::repr(value).cast<std::string>());
}

// Whether v is a bool (Python's or NumPy's), which is never taken as a number.
inline bool is_bool(py::handle v) {
  return PyBool_Check(v.ptr()) || std::string(Py_TYPE(v.ptr())->tp_name) == "numpy.bool";
}

// An int >= minimum (and <= maximum): a Python or NumPy integer (bool rejected).
inline std::int64_t int_arg(py::handle v, const char* op, const char* name, std::int64_t minimum,
                            std::int64_t maximum = std::numeric_limits<std::int64_t>::max()) {
  if (!is_bool(v)) {
    PyObject* index = PyNumber_Index(v.ptr());  // ints and NumPy integers, not floats
    if (index != nullptr) {
      const long long n = PyLong_AsLongLong(index);
      Py_DECREF(index);
      if (!PyErr_Occurred() && n >= minimum && n <= maximum) return n;
    }
    PyErr_Clear();
  }
  bad_argument(op, name,
               maximum == std::numeric_limits<std::int64_t>::max()
                   ? "an int >= " + std::to_string(minimum)
                   : "an int in [" + std::to_string(minimum) + ", " + std::to_string(maximum) + "]",
               v);
}

// A real number: a Python or NumPy number (bool and strings rejected).
inline double real_arg(py::handle v, const char* op, const char* name) {
  if (!is_bool(v) && !PyUnicode_Check(v.ptr()) && !PyBytes_Check(v.ptr()) &&
      (PyFloat_Check(v.ptr()) || PyLong_Check(v.ptr()) || PyNumber_Check(v.ptr()))) {
    const double d = PyFloat_AsDouble(v.ptr());
    if (!PyErr_Occurred()) return d;
    PyErr_Clear();
  }
  bad_argument(op, name, "a real number", v);
}

// An int >= minimum, or a pair (h, w) of them.
inline std::pair<std::int64_t, std::int64_t> pair_arg(py::handle v, const char* op, const char* name,
                                                      std::int64_t minimum) {
  const std::string must = "an int >= " + std::to_string(minimum) + " or a pair (h, w) of them";
  try {
    if (!PyTuple_Check(v.ptr()) && !PyList_Check(v.ptr())) {
      const std::int64_t n = int_arg(v, op, name, minimum);
      return {n, n};
    }
    if (py::len(v) == 2) {
      const py::sequence s = py::reinterpret_borrow<py::sequence>(v);
      return {int_arg(s[0], op, name, minimum), int_arg(s[1], op, name, minimum)};
    }
  } catch (const py::value_error&) {
  }
  bad_argument(op, name, must, v);
}

// A Python int in [0, 2**64) (a Philox seed or offset).
inline std::uint64_t u64_arg(py::handle v, const char* op, const char* name) {
  if (PyLong_Check(v.ptr()) && !PyBool_Check(v.ptr())) {
    const unsigned long long n = PyLong_AsUnsignedLongLong(v.ptr());
    if (!PyErr_Occurred()) return n;
    PyErr_Clear();
  }
  bad_argument(op, name, "an int in [0, 2**64)", v);
}

// An output: the array `out` (converted for writing) when given, else a new tensor of `shape` with
// the dtype and device of `like`; *result is the array to return.
inline Tensor output(Call& c, py::handle out, const char* name, const Shape& shape, const Tensor& like,
                     py::object* result) {
  if (!out.is_none()) {
    *result = py::reinterpret_borrow<py::object>(out);
    return c.out(out, name);
  }
  Tensor t = Tensor::empty(shape, like.dtype(), like.device(), like.device_index());
  *result = to_python(t);
  return t;
}

// (N, C, H, W) given as a sequence of four ints >= 0.
inline Shape shape4_arg(py::handle v, const char* op, const char* name) {
  if ((PyTuple_Check(v.ptr()) || PyList_Check(v.ptr())) && py::len(v) == 4) {
    Shape s;
    for (py::handle d : py::reinterpret_borrow<py::sequence>(v)) {
      if (!PyLong_Check(d.ptr()) || PyBool_Check(d.ptr()) || PyLong_AsLongLong(d.ptr()) < 0) {
        PyErr_Clear();
        bad_argument(op, name, "4 ints (N, C, H, W) >= 0", v);
      }
      s.push_back(PyLong_AsLongLong(d.ptr()));
    }
    return s;
  }
  bad_argument(op, name, "4 ints (N, C, H, W) >= 0", v);
}

// None or an activation name.
inline Activation activation_arg(py::handle v, const char* op) {
  if (v.is_none()) return Activation::identity;
  if (py::isinstance<py::str>(v)) {
    try {
      return activation_from_name(v.cast<std::string>());
    } catch (const std::invalid_argument&) {
    }
  }
  bad_argument(op, "activation", "one of identity, relu, leaky_relu, tanh, sigmoid or None", v);
}

inline py::object activation_value(Activation act) {
  return act == Activation::identity ? py::object(py::none()) : py::object(py::str(activation_name(act)));
}

inline std::string str_arg(py::handle v, const char* op, const char* name, const std::string& must) {
  if (!py::isinstance<py::str>(v)) bad_argument(op, name, must, v);
  return v.cast<std::string>();
}

inline nn::Init init_arg(py::handle v, const char* op) {
  if (v.is_none()) return nn::Init::automatic;
  const std::string s = str_arg(v, op, "init", "'he', 'glorot' or None");
  if (s == "he") return nn::Init::he;
  if (s == "glorot") return nn::Init::glorot;
  bad_argument(op, "init", "'he', 'glorot' or None", v);
}

inline py::object init_value(nn::Init init) {
  return init == nn::Init::automatic ? py::object(py::none()) : py::object(py::str(nn::init_name(init)));
}

// None (the process-wide generator) or a Generator.
inline std::shared_ptr<Generator> generator_arg(py::handle v, const char* op) {
  if (v.is_none()) return nullptr;
  if (!py::isinstance<Generator>(v)) bad_argument(op, "generator", "a seisoku.Generator or None", v);
  return v.cast<std::shared_ptr<Generator>>();
}

// bias=True / False, or a Parameter to share.
inline std::pair<bool, nn::ParameterPtr> bias_arg(py::handle v, const char* op) {
  if (py::isinstance<nn::Parameter>(v)) return {true, v.cast<nn::ParameterPtr>()};
  if (PyBool_Check(v.ptr())) return {v.ptr() == Py_True, nullptr};
  bad_argument(op, "bias", "True, False or a Parameter to share", v);
}

inline nn::ParameterPtr parameter_arg(py::handle v, const char* op, const char* name) {
  if (v.is_none()) return nullptr;
  if (!py::isinstance<nn::Parameter>(v)) bad_argument(op, name, "a seisoku.nn.Parameter or None", v);
  return v.cast<nn::ParameterPtr>();
}

// The optional bias for a constructor's config: the Parameter, or False.
inline py::object bias_value(const nn::ParameterPtr& bias) {
  return bias ? py::cast(bias) : py::object(py::bool_(false));
}

// The dtype / device arguments of a layer that creates parameters.
struct Placement {
  DType dtype;
  Device device;
  int device_index;
};
inline Placement placement_arg(py::handle dtype, py::handle device, const char* op) {
  Placement p{dtype_of(dtype, op, "dtype"), Device::cpu, 0};
  p.device = device_of(device, op, &p.device_index);
  return p;
}

// Holds a module for one call from Python: a second thread using the same module at the same
// time gets a clear error instead of sharing its saved state.
template <class M>
class Running {
 public:
  explicit Running(M& m) : m_(m) {
    if (!m.try_enter())
      throw py::value_error(std::string("[") + m.type_name() +
                            "] is running in another thread: a module keeps one forward's state, so one thread "
                            "uses it at a time (give each thread its own copy: copy.deepcopy)");
  }
  ~Running() { m_.leave(); }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;

 private:
  M& m_;
};

// module.forward(x) and module.backward(grad, need_input_grad) from Python: the input kept alive
// for backward, the GIL released while C++ runs (a Python module inside takes it back).
inline py::object call_forward(nn::Module& m, py::handle x) {
  Running<nn::Module> running(m);
  Call c(m.type_name());
  const Tensor t = c.kept(x, "x");
  Tensor y;
  c.run([&] { y = m.forward(t); });
  return to_python(y);
}

inline py::object call_backward(nn::Module& m, py::handle grad, bool need_input_grad) {
  Running<nn::Module> running(m);
  Call c(m.type_name());
  const Tensor g = c.kept(grad, "grad");
  Tensor gx;
  c.run([&] { gx = m.backward(g, need_input_grad); });
  return to_python(gx);
}

}  // namespace seisoku::python
