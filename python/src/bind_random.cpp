// Bindings of the random family: the Philox fills and seisoku.Generator (seisoku::Generator).
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "convert.hpp"
#include "seisoku/philox.hpp"
#include "seisoku/random.hpp"

namespace seisoku::python {
namespace {

[[noreturn]] void bad(const char* op, const std::string& what, py::handle value) {
  throw py::value_error(std::string("[") + op + "] argument '" + what + "' " +
                        (what == "size" ? "must be a non-negative int or a sequence of them"
                                        : "must be an int in [0, 2**64)") +
                        ", got " + py::repr(value).cast<std::string>());
}

// A Python int in [0, 2**64) (bool and other types rejected).
std::uint64_t u64(py::handle value, const char* op, const char* name) {
  if (!PyLong_Check(value.ptr()) || PyBool_Check(value.ptr())) bad(op, name, value);
  const unsigned long long v = PyLong_AsUnsignedLongLong(value.ptr());
  if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    bad(op, name, value);
  }
  return v;
}

Shape shape_of(py::handle size, const char* op) {
  Shape shape;
  auto one = [&](py::handle v) {
    if (!PyLong_Check(v.ptr()) || PyBool_Check(v.ptr())) bad(op, "size", size);
    const long long n = PyLong_AsLongLong(v.ptr());
    if (n < 0 || PyErr_Occurred()) {
      PyErr_Clear();
      bad(op, "size", size);
    }
    shape.push_back(n);
  };
  if (PyLong_Check(size.ptr())) {
    one(size);
  } else if (py::isinstance<py::sequence>(size) && !py::isinstance<py::str>(size)) {
    for (py::handle v : py::reinterpret_borrow<py::sequence>(size)) one(v);
  } else {
    bad(op, "size", size);
  }
  return shape;
}

// `out` when given, else a new array of `size` and dtype (one of `allowed`) on `device`.
Tensor target(py::handle out, py::handle size, py::handle dtype, py::handle device, const char* op,
              std::initializer_list<DType> allowed, Call& call, py::object* result) {
  if (!out.is_none()) {
    *result = py::reinterpret_borrow<py::object>(out);
    return call.out(out, "out");
  }
  const DType dt = dtype_of(dtype, op, "dtype");
  bool ok = false;
  std::string names;
  for (DType d : allowed) {
    ok = ok || d == dt;
    names += std::string(names.empty() ? "" : ", ") + dtype_name(d);
  }
  if (!ok) throw py::value_error(std::string("[") + op + "] argument 'dtype' must be one of " + names + ", got " + dtype_name(dt));
  int index = 0;
  const Device dev = device_of(device, op, &index);
  Tensor t = Tensor::empty(shape_of(size, op), dt, dev, index);
  *result = to_python(t);
  call.uses(t);
  return t;
}

}  // namespace

void bind_random(py::module_& m) {
  using py::arg;
  m.def(
      "uniform",
      [](py::handle out, std::uint64_t seed, std::uint64_t offset, double low, double high) {
        Call c("uniform");
        Tensor t = c.out(out, "out");
        c.run([&] { seisoku::uniform(t, seed, offset, low, high); });
      },
      arg("out"), arg("seed"), arg("offset"), arg("low") = 0.0, arg("high") = 1.0);
  m.def(
      "normal",
      [](py::handle out, std::uint64_t seed, std::uint64_t offset, double mean, double stddev) {
        Call c("normal");
        Tensor t = c.out(out, "out");
        c.run([&] { seisoku::normal(t, seed, offset, mean, stddev); });
      },
      arg("out"), arg("seed"), arg("offset"), arg("mean") = 0.0, arg("std") = 1.0);
  m.def(
      "bernoulli",
      [](py::handle out, std::uint64_t seed, std::uint64_t offset, double p) {
        Call c("bernoulli");
        Tensor t = c.out(out, "out");
        c.run([&] { seisoku::bernoulli(t, seed, offset, p); });
      },
      arg("out"), arg("seed"), arg("offset"), arg("p"));
  m.def(
      "philox4x32_10",
      [](py::handle seed, py::handle offset, py::handle block) {
        const philox::Block r = philox::draw(u64(seed, "philox4x32_10", "seed"), u64(offset, "philox4x32_10", "offset"),
                                             u64(block, "philox4x32_10", "block"));
        return py::make_tuple(r.v[0], r.v[1], r.v[2], r.v[3]);
      },
      arg("seed"), arg("offset"), arg("block"), "The 4 raw 32-bit words of block `block` of the stream (seed, offset).");
  m.def(
      "check_u64", [](py::handle value, const std::string& op, const std::string& name) {
        return u64(value, op.c_str(), name.c_str());
      },
      arg("value"), arg("op"), arg("name"), "value as an int in [0, 2**64), else a ValueError naming op and name");

  py::classh<Generator>(m, "Generator", R"doc(A seeded source of random arrays: Philox4x32-10 keyed by (seed, offset, element index).

A draw depends only on (seed, offset, index): the same bits on CPU and GPU and for any number of
threads. Each draw takes a fresh offset (atomically, so threads may share a generator), so draws
never overlap.

Args:
    seed: key of the Philox stream, an int in [0, 2**64).
    offset: first stream offset to hand out (default 0); each draw takes the next one.)doc")
      .def(py::init([](py::handle seed, py::handle offset) {
             return std::make_shared<Generator>(u64(seed, "Generator", "seed"), u64(offset, "Generator", "offset"));
           }),
           arg("seed"), arg("offset") = 0)
      .def_property_readonly("seed", &Generator::seed, "The key of the stream.")
      .def_property_readonly("offset", &Generator::offset, "The offset the next draw will use.")
      .def(
          "next_offset",
          [](Generator& g, py::handle n) {
            if (!PyLong_Check(n.ptr()) || PyBool_Check(n.ptr()) || PyLong_AsLongLong(n.ptr()) < 1) {
              PyErr_Clear();
              throw py::value_error("[Generator.next_offset] argument 'n' must be an int >= 1, got " +
                                    py::repr(n).cast<std::string>());
            }
            return g.next_offset(n.cast<std::uint64_t>());
          },
          arg("n") = 1, "Reserve n offsets and return the first.")
      .def("state_dict",
           [](const Generator& g) {
             py::dict d;
             d["seed"] = g.seed();
             d["offset"] = g.offset();
             return d;
           })
      .def(
          "load_state_dict",
          [](Generator& g, const py::dict& state) {
            if (!state.contains("seed") || !state.contains("offset"))
              throw py::value_error("[Generator.load_state_dict] the state needs 'seed' and 'offset', got " +
                                    py::repr(state).cast<std::string>());
            g.reset(u64(state["seed"], "Generator.load_state_dict", "state['seed']"),
                    u64(state["offset"], "Generator.load_state_dict", "state['offset']"));
          },
          arg("state"))
      .def(
          "uniform",
          [](Generator& g, py::handle size, double low, double high, py::handle dtype, py::handle device,
             py::handle out) {
            Call c("uniform");
            py::object result;
            Tensor t = target(out, size, dtype, device, "uniform", {DType::float32, DType::float64}, c, &result);
            const std::uint64_t offset = g.next_offset();
            c.run([&] { seisoku::uniform(t, g.seed(), offset, low, high); });
            return result;
          },
          arg("size") = py::tuple(), arg("low") = 0.0, arg("high") = 1.0, py::kw_only(), arg("dtype") = "float32",
          arg("device") = "cpu", arg("out") = py::none(),
          "Uniform values on [low, high) (float32: 24 random bits, float64: 53), a new array of `size` or into `out`.")
      .def(
          "normal",
          [](Generator& g, py::handle size, double mean, double std, py::handle dtype, py::handle device,
             py::handle out) {
            Call c("normal");
            py::object result;
            Tensor t = target(out, size, dtype, device, "normal", {DType::float32, DType::float64}, c, &result);
            const std::uint64_t offset = g.next_offset();
            c.run([&] { seisoku::normal(t, g.seed(), offset, mean, std); });
            return result;
          },
          arg("size") = py::tuple(), arg("mean") = 0.0, arg("std") = 1.0, py::kw_only(), arg("dtype") = "float32",
          arg("device") = "cpu", arg("out") = py::none(),
          "Normal values N(mean, std**2) by the Box-Muller transform; float32 or float64.")
      .def(
          "bernoulli",
          [](Generator& g, py::handle size, double p, py::handle dtype, py::handle device, py::handle out) {
            Call c("bernoulli");
            py::object result;
            Tensor t = target(out, size, dtype, device, "bernoulli", {DType::float32, DType::float64, DType::uint8}, c,
                              &result);
            const std::uint64_t offset = g.next_offset();
            c.run([&] { seisoku::bernoulli(t, g.seed(), offset, p); });
            return result;
          },
          arg("size") = py::tuple(), arg("p") = 0.5, py::kw_only(), arg("dtype") = "float32", arg("device") = "cpu",
          arg("out") = py::none(), "1 with probability p, else 0; float32, float64 or uint8.")
      .def("__repr__",
           [](const Generator& g) {
             return "Generator(seed=" + std::to_string(g.seed()) + ", offset=" + std::to_string(g.offset()) + ")";
           })
      .def(py::pickle([](const Generator& g) { return py::make_tuple(g.seed(), g.offset()); },
                      [](const py::tuple& t) {
                        return std::make_shared<Generator>(t[0].cast<std::uint64_t>(), t[1].cast<std::uint64_t>());
                      }));
  m.def("default_generator", &default_generator,
        "The process-wide generator used where no generator is given (layers draw from it when they draw).");
}

}  // namespace seisoku::python
