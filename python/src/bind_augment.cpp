// Bindings of the augmentation family: the transform factories of seisoku::aug (which check
// ranges) behind the Python names of their arguments, the steps they build (read-only, and
// picklable), and the ops. This file only turns Python objects into C++ values: a value of the
// wrong kind raises ValueError "[Transform] argument 'x' must be ..., got ..." in the form the
// factories use for values out of range.
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "convert.hpp"
#include "seisoku/augment.hpp"

namespace seisoku::python {
namespace {

constexpr const char* kInterpolations[] = {"nearest", "bilinear", "bicubic"};
constexpr const char* kBorders[] = {"constant", "reflect", "edge"};

// Python values of the arguments of one transform or op, named in its messages.
class Args {
 public:
  explicit Args(const char* name) : name_(name) {}

  [[noreturn]] void bad(const char* arg, const std::string& must, py::handle value) const {
    throw std::invalid_argument("[" + std::string(name_) + "] argument '" + arg + "' must be " + must + ", got " +
                                py::repr(value).cast<std::string>());
  }

  // A real number (int, float or a NumPy scalar; not bool, str or complex).
  double real(const char* arg, py::handle v) const {
    if (!is_number(v)) bad(arg, "a number", v);
    return PyFloat_AsDouble(v.ptr());
  }

  // An int (Python or NumPy; not bool or float).
  std::int64_t integer(const char* arg, py::handle v, const char* must = "an int") const {
    if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr())) bad(arg, must, v);
    const long long r = PyLong_AsLongLong(py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr())).ptr());
    if (r == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      bad(arg, std::string(must) + " of 64 bits", v);
    }
    return r;
  }

  // A (low, high) pair of numbers.
  std::pair<double, double> range(const char* arg, py::handle v) const {
    const char* must = "a (low, high) pair of numbers";
    if (!is_pair(v) || !is_number(item(v, 0)) || !is_number(item(v, 1))) bad(arg, must, v);
    return {real(arg, item(v, 0)), real(arg, item(v, 1))};
  }

  // (height, width) from one int (a square) or a pair of ints.
  std::pair<std::int64_t, std::int64_t> size(py::handle v) const {
    const char* must = "an int or a (height, width) pair of ints";
    if (is_pair(v)) return {integer("size", item(v, 0), must), integer("size", item(v, 1), must)};
    const std::int64_t s = integer("size", v, must);
    return {s, s};
  }

  // Any iterable of ints but a string.
  aug::Labels labels(py::handle v) const {
    const char* must = "an iterable of ints";
    if (PyUnicode_Check(v.ptr()) || PyBytes_Check(v.ptr()) || !py::isinstance<py::iterable>(v))
      bad("skip_labels", must, v);
    aug::Labels out;
    for (py::handle item : py::reinterpret_borrow<py::iterable>(v)) {
      if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr())) bad("skip_labels", must, v);
      out.push_back(integer("skip_labels", item, must));
    }
    return out;
  }

  // A mapping {label: new label or 'skip'} of ints (None: empty).
  aug::LabelMap label_map(py::handle v) const {
    const char* must = "a dict {label: new label or 'skip'} of ints";
    aug::LabelMap out;
    if (v.is_none()) return out;
    if (!PyDict_Check(v.ptr())) bad("label_map", must, v);
    for (auto [key, value] : py::reinterpret_borrow<py::dict>(v)) {
      if (PyBool_Check(key.ptr()) || !PyIndex_Check(key.ptr())) bad("label_map", must, v);
      std::int64_t to;
      if (PyUnicode_Check(value.ptr())) {
        if (value.cast<std::string>() != "skip") bad("label_map", must, v);
        to = aug::kSkip;
      } else {
        if (PyBool_Check(value.ptr()) || !PyIndex_Check(value.ptr())) bad("label_map", must, v);
        to = integer("label_map", value, must);
      }
      out.emplace_back(integer("label_map", key, must), to);
    }
    return out;
  }

  Interpolation interpolation(py::handle v) const {
    return choice<Interpolation>("interpolation", v, kInterpolations);
  }
  Border border(py::handle v) const { return choice<Border>("border", v, kBorders); }

 private:
  static bool is_number(py::handle v) {
    PyObject* o = v.ptr();
    return !PyBool_Check(o) && (PyFloat_Check(o) || PyIndex_Check(o) || (PyNumber_Check(o) && !PyComplex_Check(o) &&
                                                                            py::hasattr(v, "__float__") &&
                                                                            !PyUnicode_Check(o)));
  }
  static bool is_pair(py::handle v) {
    return (PyTuple_Check(v.ptr()) || PyList_Check(v.ptr())) && PySequence_Size(v.ptr()) == 2;
  }
  static py::object item(py::handle v, int i) {
    return py::reinterpret_steal<py::object>(PySequence_GetItem(v.ptr(), i));
  }

  template <class E, std::size_t N>
  E choice(const char* arg, py::handle v, const char* const (&names)[N]) const {
    if (PyUnicode_Check(v.ptr())) {
      const std::string s = v.cast<std::string>();
      for (std::size_t i = 0; i < N; ++i)
        if (s == names[i]) return static_cast<E>(i);
    }
    std::string all;
    for (std::size_t i = 0; i < N; ++i) all += std::string(i ? ", " : "") + "'" + names[i] + "'";
    bad(arg, "one of " + all, v);
  }

  const char* name_;
};

ImageLayout layout_from(const char* op, py::handle v) {
  if (PyUnicode_Check(v.ptr())) {
    const std::string s = v.cast<std::string>();
    if (s == "NHWC" || s == "nhwc") return ImageLayout::nhwc;
    if (s == "NCHW" || s == "nchw") return ImageLayout::nchw;
  }
  Args(op).bad("layout", "'NHWC' or 'NCHW'", v);
}

py::tuple pair_of(double a, double b) { return py::make_tuple(a, b); }

// The fields of a step, in declaration order (pickling).
py::tuple step_state(const AugmentStep& s) {
  return py::make_tuple(static_cast<int>(s.op), s.p, s.height, s.width, s.padding, s.count, s.scale_lo, s.scale_hi,
                        s.ratio_lo, s.ratio_hi, s.degrees_lo, s.degrees_hi, s.alpha, s.sigma, s.std,
                        static_cast<int>(s.interpolation), static_cast<int>(s.border), s.fill, s.random_fill,
                        s.skip_labels, s.label_map);
}

// label_map as a dict {label: new label or 'skip'}.
py::dict label_map_dict(const AugmentStep& s) {
  py::dict d;
  for (const auto& [from, to] : s.label_map) d[py::int_(from)] = to == aug::kSkip ? py::object(py::str("skip")) : py::int_(to);
  return d;
}

AugmentStep step_from_state(const py::tuple& t) {
  if (t.size() != 20 && t.size() != 21)
    throw std::invalid_argument("[AugmentStep] argument 'state' must be a tuple of 21 fields");
  AugmentStep s;
  const int op = t[0].cast<int>(), interpolation = t[15].cast<int>(), border = t[16].cast<int>();
  if (op < 0 || op > static_cast<int>(AugmentOp::gaussian_noise) || interpolation < 0 || interpolation > 2 ||
      border < 0 || border > 2)
    throw std::invalid_argument("[AugmentStep] argument 'state' must hold a known op, interpolation and border");
  s.op = static_cast<AugmentOp>(op);
  s.p = t[1].cast<double>(), s.height = t[2].cast<std::int64_t>(), s.width = t[3].cast<std::int64_t>();
  s.padding = t[4].cast<std::int64_t>(), s.count = t[5].cast<std::int64_t>();
  s.scale_lo = t[6].cast<double>(), s.scale_hi = t[7].cast<double>();
  s.ratio_lo = t[8].cast<double>(), s.ratio_hi = t[9].cast<double>();
  s.degrees_lo = t[10].cast<double>(), s.degrees_hi = t[11].cast<double>();
  s.alpha = t[12].cast<double>(), s.sigma = t[13].cast<double>(), s.std = t[14].cast<double>();
  s.interpolation = static_cast<Interpolation>(interpolation), s.border = static_cast<Border>(border);
  s.fill = t[17].cast<double>(), s.random_fill = t[18].cast<bool>();
  s.skip_labels = t[19].cast<aug::Labels>();
  if (t.size() == 21) s.label_map = t[20].cast<aug::LabelMap>();
  aug::check_step(s);
  return s;
}

void bind_step(py::module_& m) {
  py::class_<AugmentStep>(m, "AugmentStep",
                          "One transform of an augmentation pipeline, built by its factory (seisoku/augment.hpp); "
                          "read-only")
      .def_property_readonly("name", [](const AugmentStep& s) { return std::string(aug::transform_name(s.op)); })
      .def_readonly("p", &AugmentStep::p)
      .def_property_readonly("size", [](const AugmentStep& s) { return py::make_tuple(s.height, s.width); })
      .def_readonly("padding", &AugmentStep::padding)
      .def_readonly("count", &AugmentStep::count)
      .def_property_readonly("scale", [](const AugmentStep& s) { return pair_of(s.scale_lo, s.scale_hi); })
      .def_property_readonly("ratio", [](const AugmentStep& s) { return pair_of(s.ratio_lo, s.ratio_hi); })
      .def_property_readonly("degrees", [](const AugmentStep& s) { return pair_of(s.degrees_lo, s.degrees_hi); })
      .def_readonly("alpha", &AugmentStep::alpha)
      .def_readonly("sigma", &AugmentStep::sigma)
      .def_readonly("std", &AugmentStep::std)
      .def_property_readonly("interpolation",
                             [](const AugmentStep& s) { return kInterpolations[static_cast<int>(s.interpolation)]; })
      .def_property_readonly("border", [](const AugmentStep& s) { return kBorders[static_cast<int>(s.border)]; })
      .def_readonly("fill", &AugmentStep::fill)
      .def_readonly("random_fill", &AugmentStep::random_fill)
      .def_property_readonly("skip_labels", [](const AugmentStep& s) { return py::tuple(py::cast(s.skip_labels)); })
      .def_property_readonly("label_map", &label_map_dict)
      .def(py::pickle(&step_state, &step_from_state));
}

// The factories, as seisoku._core.aug.<name> (the C++ names; gaussian_noise is also an op of
// the mask family).
void bind_factories(py::module_& parent) {
  using py::arg;
  py::module_ m = parent.def_submodule("aug", "The transform factories of seisoku::aug");
  m.def(
      "with_label_map",
      [](const AugmentStep& step, py::handle label_map) {
        return aug::with_label_map(step, Args(aug::transform_name(step.op)).label_map(label_map));
      },
      arg("step"), arg("label_map"), "The step with its label_map set ({label: new label or 'skip'}), checked");
  m.def(
      "mapped_label",
      [](const AugmentStep& step, std::int64_t label) -> py::object {
        const std::int64_t to = aug::mapped_label(step, label);
        return to == aug::kSkip ? py::object(py::str("skip")) : py::object(py::int_(to));
      },
      arg("step"), arg("label"), "The label after the step when applied, or 'skip' when it never applies");
  m.def(
      "horizontal_flip",
      [](py::handle p, py::handle skip) {
        const Args a("HorizontalFlip");
        return aug::horizontal_flip(a.real("p", p), a.labels(skip));
      },
      arg("p"), arg("skip_labels"));
  m.def(
      "vertical_flip",
      [](py::handle p, py::handle skip) {
        const Args a("VerticalFlip");
        return aug::vertical_flip(a.real("p", p), a.labels(skip));
      },
      arg("p"), arg("skip_labels"));
  m.def(
      "random_crop",
      [](py::handle size, py::handle padding, py::handle border, py::handle fill, py::handle p, py::handle skip) {
        const Args a("RandomCrop");
        const auto [h, w] = a.size(size);
        return aug::random_crop(h, w, a.integer("padding", padding), a.border(border), a.real("fill", fill),
                                a.real("p", p), a.labels(skip));
      },
      arg("size"), arg("padding"), arg("border"), arg("fill"), arg("p"), arg("skip_labels"));
  m.def(
      "random_resized_crop",
      [](py::handle size, py::handle scale, py::handle ratio, py::handle interpolation, py::handle p,
         py::handle skip) {
        const Args a("RandomResizedCrop");
        const auto [h, w] = a.size(size);
        const auto [s0, s1] = a.range("scale", scale);
        const auto [r0, r1] = a.range("ratio", ratio);
        return aug::random_resized_crop(h, w, s0, s1, r0, r1, a.interpolation(interpolation), a.real("p", p),
                                        a.labels(skip));
      },
      arg("size"), arg("scale"), arg("ratio"), arg("interpolation"), arg("p"), arg("skip_labels"));
  m.def(
      "random_rotation",
      [](py::handle degrees, py::handle interpolation, py::handle border, py::handle fill, py::handle p,
         py::handle skip) {
        const Args a("RandomRotation");
        double lo, hi;
        if (PyTuple_Check(degrees.ptr()) || PyList_Check(degrees.ptr())) {
          std::tie(lo, hi) = a.range("degrees", degrees);
        } else {
          const double d = a.real("degrees", degrees);
          if (!(d >= 0.0)) a.bad("degrees", "a number >= 0 (the range (-d, d)) or a (low, high) pair", degrees);
          lo = -d, hi = d;
        }
        return aug::random_rotation(lo, hi, a.interpolation(interpolation), a.border(border), a.real("fill", fill),
                                    a.real("p", p), a.labels(skip));
      },
      arg("degrees"), arg("interpolation"), arg("border"), arg("fill"), arg("p"), arg("skip_labels"));
  m.def(
      "cutout",
      [](py::handle count, py::handle size, py::handle fill, py::handle p, py::handle skip) {
        const Args a("Cutout");
        return aug::cutout(a.integer("count", count), a.integer("size", size), a.real("fill", fill), a.real("p", p),
                           a.labels(skip));
      },
      arg("count"), arg("size"), arg("fill"), arg("p"), arg("skip_labels"));
  m.def(
      "random_erasing",
      [](py::handle scale, py::handle ratio, py::handle fill, py::handle p, py::handle skip) {
        const Args a("RandomErasing");
        const auto [s0, s1] = a.range("scale", scale);
        const auto [r0, r1] = a.range("ratio", ratio);
        const bool random = PyUnicode_Check(fill.ptr()) && fill.cast<std::string>() == "random";
        if (PyUnicode_Check(fill.ptr()) && !random) a.bad("fill", "a number or 'random'", fill);
        return aug::random_erasing(s0, s1, r0, r1, random ? 0.0 : a.real("fill", fill), random, a.real("p", p),
                                   a.labels(skip));
      },
      arg("scale"), arg("ratio"), arg("fill"), arg("p"), arg("skip_labels"));
  m.def(
      "elastic_distortion",
      [](py::handle alpha, py::handle sigma, py::handle interpolation, py::handle border, py::handle fill,
         py::handle p, py::handle skip) {
        const Args a("ElasticDistortion");
        return aug::elastic_distortion(a.real("alpha", alpha), a.real("sigma", sigma), a.interpolation(interpolation),
                                       a.border(border), a.real("fill", fill), a.real("p", p), a.labels(skip));
      },
      arg("alpha"), arg("sigma"), arg("interpolation"), arg("border"), arg("fill"), arg("p"), arg("skip_labels"));
  m.def(
      "gaussian_noise",
      [](py::handle std_, py::handle p, py::handle skip) {
        const Args a("GaussianNoise");
        return aug::gaussian_noise(a.real("std", std_), a.real("p", p), a.labels(skip));
      },
      arg("std"), arg("p"), arg("skip_labels"));
}

}  // namespace

void bind_augment(py::module_& m) {
  using py::arg;
  bind_step(m);
  bind_factories(m);
  m.def(
      "augment_output_shape",
      [](const std::vector<std::int64_t>& shape, const std::vector<AugmentStep>& steps, py::handle layout) {
        return seisoku::augment_output_shape(shape, steps, layout_from("augment", layout));
      },
      arg("shape"), arg("steps"), arg("layout"), "Shape of augment's output for an input shape");
  m.def(
      "augment",
      [](py::handle x, py::handle out, const std::vector<AugmentStep>& steps, py::handle layout, std::uint64_t seed,
         std::uint64_t sample_offset, py::handle labels, py::handle labels_out) {
        const ImageLayout lay = layout_from("augment", layout);
        Call c("augment");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out"), tl = c.opt_in(labels, "labels");
        Tensor tlo = c.opt_out(labels_out, "labels_out");
        c.run([&] { seisoku::augment(tx, to, steps, lay, seed, sample_offset, tl, tlo); });
      },
      arg("x"), arg("out"), arg("steps"), arg("layout"), arg("seed"), arg("sample_offset"), arg("labels"),
      arg("labels_out") = py::none(),
      "out = the pipeline `steps` applied to the batch x");
  m.def(
      "gaussian_smooth",
      [](py::handle x, py::handle out, py::handle sigma) {
        const double s = Args("gaussian_smooth").real("sigma", sigma);
        Call c("gaussian_smooth");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::gaussian_smooth(tx, to, s); });
      },
      arg("x"), arg("out"), arg("sigma"), "out (N, H, W) = x smoothed by a Gaussian of sigma pixels");
  m.def(
      "elastic_displacement",
      [](py::handle out, py::handle alpha, py::handle sigma, std::uint64_t seed, std::uint64_t sample_offset,
         py::handle step_index) {
        const Args a("elastic_displacement");
        const double al = a.real("alpha", alpha), s = a.real("sigma", sigma);
        const std::int64_t k = a.integer("step_index", step_index);
        Call c("elastic_displacement");
        Tensor to = c.out(out, "out");
        c.run([&] { seisoku::elastic_displacement(to, al, s, seed, sample_offset, k); });
      },
      arg("out"), arg("alpha"), arg("sigma"), arg("seed"), arg("sample_offset"), arg("step_index"),
      "out (N, 2, H, W) = the elastic displacement fields of a pipeline step");
  m.def(
      "displace",
      [](py::handle x, py::handle disp, py::handle out, py::handle layout, py::handle interpolation,
         py::handle border, py::handle fill) {
        const Args a("displace");
        const ImageLayout lay = layout_from("displace", layout);
        const Interpolation it = a.interpolation(interpolation);
        const Border bd = a.border(border);
        const double f = a.real("fill", fill);
        Call c("displace");
        Tensor tx = c.in(x, "x"), td = c.in(disp, "disp"), to = c.out(out, "out");
        c.run([&] { seisoku::displace(tx, td, to, lay, it, bd, f); });
      },
      arg("x"), arg("disp"), arg("out"), arg("layout"), arg("interpolation"), arg("border"), arg("fill"),
      "out = x sampled at (x + disp[:, 0], y + disp[:, 1])");
}

}  // namespace seisoku::python
