#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "convert.hpp"
#include "seisoku/augment.hpp"

namespace seisoku::python {
namespace {

constexpr const char* kOps[] = {"horizontal_flip", "vertical_flip",  "random_crop",        "random_resized_crop",
                                "random_rotation", "cutout",         "random_erasing",     "elastic_distortion",
                                "gaussian_noise"};
constexpr const char* kInterps[] = {"nearest", "bilinear", "bicubic"};
constexpr const char* kBorders[] = {"constant", "reflect", "edge"};

template <class E, std::size_t N>
E from_name(const char* const (&names)[N], const std::string& s, const char* what) {
  for (std::size_t i = 0; i < N; ++i)
    if (s == names[i]) return static_cast<E>(i);
  std::string all;
  for (std::size_t i = 0; i < N; ++i) all += std::string(i ? ", " : "") + names[i];
  throw std::invalid_argument(std::string(what) + " must be one of " + all + ", got '" + s + "'");
}

ImageLayout layout_from(const std::string& s) {
  if (s == "NHWC" || s == "nhwc") return ImageLayout::nhwc;
  if (s == "NCHW" || s == "nchw") return ImageLayout::nchw;
  throw std::invalid_argument("layout must be 'NHWC' or 'NCHW', got '" + s + "'");
}

}  // namespace

void bind_augment(py::module_& m) {
  using py::arg;
  py::class_<AugmentStep>(m, "AugmentStep", "One transform of an augmentation pipeline (see seisoku/augment.hpp)")
      .def(py::init<>())
      .def_property(
          "op", [](const AugmentStep& s) { return std::string(kOps[static_cast<int>(s.op)]); },
          [](AugmentStep& s, const std::string& v) { s.op = from_name<AugmentOp>(kOps, v, "op"); })
      .def_property(
          "interp", [](const AugmentStep& s) { return std::string(kInterps[static_cast<int>(s.interp)]); },
          [](AugmentStep& s, const std::string& v) { s.interp = from_name<Interp>(kInterps, v, "interpolation"); })
      .def_property(
          "border", [](const AugmentStep& s) { return std::string(kBorders[static_cast<int>(s.border)]); },
          [](AugmentStep& s, const std::string& v) { s.border = from_name<Border>(kBorders, v, "border"); })
      .def_readwrite("p", &AugmentStep::p)
      .def_readwrite("height", &AugmentStep::height)
      .def_readwrite("width", &AugmentStep::width)
      .def_readwrite("padding", &AugmentStep::padding)
      .def_readwrite("count", &AugmentStep::count)
      .def_readwrite("lo", &AugmentStep::lo)
      .def_readwrite("hi", &AugmentStep::hi)
      .def_readwrite("ratio_lo", &AugmentStep::ratio_lo)
      .def_readwrite("ratio_hi", &AugmentStep::ratio_hi)
      .def_readwrite("alpha", &AugmentStep::alpha)
      .def_readwrite("sigma", &AugmentStep::sigma)
      .def_readwrite("stddev", &AugmentStep::stddev)
      .def_readwrite("fill", &AugmentStep::fill)
      .def_readwrite("random_fill", &AugmentStep::random_fill)
      .def_readwrite("skip_labels", &AugmentStep::skip_labels);

  m.def(
      "augment_output_shape",
      [](const std::vector<std::int64_t>& shape, const std::vector<AugmentStep>& steps, const std::string& layout) {
        return seisoku::augment_output_shape(shape, steps, layout_from(layout));
      },
      arg("shape"), arg("steps"), arg("layout"), "Shape of augment's output for an input shape");
  m.def(
      "augment",
      [](py::handle x, py::handle out, const std::vector<AugmentStep>& steps, const std::string& layout,
         std::uint64_t seed, std::uint64_t sample_offset, py::handle labels) {
        const ImageLayout lay = layout_from(layout);
        Call c("augment");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out"), tl = c.opt_in(labels, "labels");
        c.run([&] { seisoku::augment(tx, to, steps, lay, seed, sample_offset, tl); });
      },
      arg("x"), arg("out"), arg("steps"), arg("layout"), arg("seed"), arg("sample_offset"), arg("labels"),
      "out = the pipeline `steps` applied to the batch x");
  m.def(
      "gaussian_smooth",
      [](py::handle x, py::handle out, double sigma) {
        Call c("gaussian_smooth");
        Tensor tx = c.in(x, "x"), to = c.out(out, "out");
        c.run([&] { seisoku::gaussian_smooth(tx, to, sigma); });
      },
      arg("x"), arg("out"), arg("sigma"), "out (N, H, W) = x smoothed by a Gaussian of sigma pixels");
  m.def(
      "elastic_displacement",
      [](py::handle out, double alpha, double sigma, std::uint64_t seed, std::uint64_t sample_offset,
         std::int64_t step_index) {
        Call c("elastic_displacement");
        Tensor to = c.out(out, "out");
        c.run([&] { seisoku::elastic_displacement(to, alpha, sigma, seed, sample_offset, step_index); });
      },
      arg("out"), arg("alpha"), arg("sigma"), arg("seed"), arg("sample_offset"), arg("step_index"),
      "out (N, 2, H, W) = the elastic displacement fields of a pipeline step");
  m.def(
      "displace",
      [](py::handle x, py::handle disp, py::handle out, const std::string& layout, const std::string& interp,
         const std::string& border, double fill) {
        const ImageLayout lay = layout_from(layout);
        const Interp it = from_name<Interp>(kInterps, interp, "interpolation");
        const Border bd = from_name<Border>(kBorders, border, "border");
        Call c("displace");
        Tensor tx = c.in(x, "x"), td = c.in(disp, "disp"), to = c.out(out, "out");
        c.run([&] { seisoku::displace(tx, td, to, lay, it, bd, fill); });
      },
      arg("x"), arg("disp"), arg("out"), arg("layout"), arg("interp"), arg("border"), arg("fill"),
      "out = x sampled at (x + disp[:, 0], y + disp[:, 1])");
}

}  // namespace seisoku::python
