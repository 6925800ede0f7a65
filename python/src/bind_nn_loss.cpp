// The loss objects of seisoku._core.nn (with a trampoline for losses written in Python).
#include <string>

#include "nn_util.hpp"
#include "seisoku/loss.hpp"

namespace seisoku::python {
namespace {

// A Python subclass of seisoku.nn.Loss: forward(pred, target, sample_weight) and backward() in
// Python.
class PyLoss : public nn::Loss, public py::trampoline_self_life_support {
 public:
  Tensor forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight) override {
    py::gil_scoped_acquire gil;
    const py::function f = py::get_override(static_cast<const nn::Loss*>(this), "forward");
    if (!f) throw py::value_error("[Loss] a seisoku.nn.Loss subclass must define forward(pred, target, sample_weight)");
    return as_kept_tensor(f(to_python(pred), to_python(target), to_python(sample_weight)), "Loss.forward",
                          "the returned value", false);
  }
  Tensor backward() override {
    py::gil_scoped_acquire gil;
    const py::function f = py::get_override(static_cast<const nn::Loss*>(this), "backward");
    if (!f) return nn::Loss::backward();
    return as_kept_tensor(f(), "Loss.backward", "the returned value", false);
  }
};

SmoothingConvention convention_arg(py::handle v) {
  return smoothing_convention_from_name("CrossEntropyLoss", str_arg(v, "CrossEntropyLoss", "convention", "'lecture' or 'uniform'"));
}

const char* convention_name(SmoothingConvention c) { return c == SmoothingConvention::uniform ? "uniform" : "lecture"; }

}  // namespace

void bind_nn_loss(py::module_& nn) {
  using py::arg;
  py::classh<nn::Loss, PyLoss>(nn, "Loss", R"doc(Base of the loss objects (seisoku::nn::Loss).

loss(pred, target, sample_weight=None) returns the weighted mean loss as a 0-d array (float() it to
log) and keeps its gradient with respect to pred, computed in the same native pass, for backward().
sample_weight: per-sample weights (N,) >= 0 with a positive sum (default: all equal). Subclass it in
Python with forward(pred, target, sample_weight) and backward().)doc")
      .def(py::init<>())
      .def(
          "forward",
          [](nn::Loss& l, py::handle pred, py::handle target, py::handle sample_weight) {
            Running<nn::Loss> running(l);
            Call c(l.type_name());
            const Tensor p = c.kept(pred, "pred"), t = c.kept(target, "target"),
                         w = c.opt_kept(sample_weight, "sample_weight");
            Tensor loss;
            c.run([&] { loss = l.forward(p, t, w); });
            return to_python(loss);
          },
          arg("pred"), arg("target"), arg("sample_weight") = py::none(),
          "The weighted mean loss as a 0-d array; keeps its gradient for backward().")
      .def(
          "backward",
          [](nn::Loss& l) {
            Tensor g;
            {
              py::gil_scoped_release release;
              g = l.backward();
            }
            return to_python(g);
          },
          "d(loss)/d(pred) of the last call.");

  py::classh<nn::CrossEntropyLoss, nn::Loss>(nn, "CrossEntropyLoss", py::is_final(), R"doc(Softmax cross-entropy on logits (N, K) with integer class targets (N,).

Args:
    label_smoothing: epsilon in [0, 1) (default 0).
    convention: 'lecture' (default; true class 1 - eps, every other class eps / (K - 1)) or
        'uniform' (PyTorch's: true class 1 - eps + eps / K, others eps / K).)doc")
      .def(py::init([](py::handle label_smoothing, py::handle convention) {
             return std::make_shared<nn::CrossEntropyLoss>(
                 real_arg(label_smoothing, "CrossEntropyLoss", "label_smoothing"), convention_arg(convention));
           }),
           arg("label_smoothing") = 0.0, arg("convention") = "lecture")
      .def_property_readonly("label_smoothing", &nn::CrossEntropyLoss::label_smoothing)
      .def_property_readonly("convention", [](const nn::CrossEntropyLoss& l) { return convention_name(l.convention()); })
      .def("_config", [](const nn::CrossEntropyLoss& l) {
        py::dict kw;
        kw["label_smoothing"] = l.label_smoothing();
        kw["convention"] = convention_name(l.convention());
        return py::make_tuple(py::tuple(), kw);
      });

  py::classh<nn::MSELoss, nn::Loss>(nn, "MSELoss", py::is_final(), "Mean squared error (per sample: the mean over its elements).")
      .def(py::init<>())
      .def("_config", [](const nn::MSELoss&) { return py::make_tuple(py::tuple(), py::dict()); });

  py::classh<nn::BCEWithLogitsLoss, nn::Loss>(nn, "BCEWithLogitsLoss", py::is_final(), "Binary cross-entropy on logits, targets in [0, 1].")
      .def(py::init<>())
      .def("_config", [](const nn::BCEWithLogitsLoss&) { return py::make_tuple(py::tuple(), py::dict()); });

  py::classh<nn::DistillationKLLoss, nn::Loss>(nn, "DistillationKLLoss", py::is_final(), R"doc(KL(softmax(teacher / T) || softmax(student / T)).

Times T**2 when scale_t2 (default; Hinton et al. 2015, so the gradient keeps the scale of a
hard-label loss). Call with (student_logits, teacher_logits).)doc")
      .def(py::init([](py::handle temperature, bool scale_t2) {
             return std::make_shared<nn::DistillationKLLoss>(
                 real_arg(temperature, "DistillationKLLoss", "temperature"), scale_t2);
           }),
           arg("temperature") = 1.0, arg("scale_t2") = true)
      .def_property_readonly("temperature", &nn::DistillationKLLoss::temperature)
      .def_property_readonly("scale_t2", &nn::DistillationKLLoss::scale_t2)
      .def("_config", [](const nn::DistillationKLLoss& l) {
        py::dict kw;
        kw["temperature"] = l.temperature();
        kw["scale_t2"] = l.scale_t2();
        return py::make_tuple(py::tuple(), kw);
      });
}

}  // namespace seisoku::python
