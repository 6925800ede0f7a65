#include <string>

#include "convert.hpp"
#include "seisoku/loss.hpp"

namespace seisoku::python {

void bind_loss(py::module_& m) {
  using py::arg;
  m.def(
      "cross_entropy",
      [](py::handle logits, py::handle target, py::handle weight, py::handle loss, py::handle grad,
         py::handle per_sample, double label_smoothing, const std::string& convention) {
        const SmoothingConvention conv = smoothing_convention_from_name("cross_entropy", convention);
        Call c("cross_entropy");
        Tensor tx = c.in(logits, "logits"), ty = c.in(target, "target"), tw = c.opt_in(weight, "weight");
        Tensor tl = c.out(loss, "loss"), tg = c.opt_out(grad, "grad");
        Tensor tp = c.opt_out(per_sample, "per_sample");
        c.run([&] { seisoku::cross_entropy(tx, ty, tw, tl, tg, tp, label_smoothing, conv); });
      },
      arg("logits"), arg("target"), arg("weight"), arg("loss"), arg("grad"), arg("per_sample"),
      arg("label_smoothing") = 0.0, arg("convention") = "lecture",
      "Softmax cross-entropy with label smoothing ('lecture' or 'uniform' convention); writes loss[0], and grad / "
      "per_sample unless None");
  m.def(
      "mse_loss",
      [](py::handle pred, py::handle target, py::handle weight, py::handle loss, py::handle grad,
         py::handle per_sample) {
        Call c("mse_loss");
        Tensor tx = c.in(pred, "pred"), tt = c.in(target, "target"), tw = c.opt_in(weight, "weight");
        Tensor tl = c.out(loss, "loss"), tg = c.opt_out(grad, "grad");
        Tensor tp = c.opt_out(per_sample, "per_sample");
        c.run([&] { seisoku::mse_loss(tx, tt, tw, tl, tg, tp); });
      },
      arg("pred"), arg("target"), arg("weight"), arg("loss"), arg("grad"), arg("per_sample"),
      "Mean squared error; writes loss[0], and grad / per_sample unless None");
  m.def(
      "bce_with_logits",
      [](py::handle logits, py::handle target, py::handle weight, py::handle loss, py::handle grad,
         py::handle per_sample) {
        Call c("bce_with_logits");
        Tensor tx = c.in(logits, "logits"), tt = c.in(target, "target"), tw = c.opt_in(weight, "weight");
        Tensor tl = c.out(loss, "loss"), tg = c.opt_out(grad, "grad");
        Tensor tp = c.opt_out(per_sample, "per_sample");
        c.run([&] { seisoku::bce_with_logits(tx, tt, tw, tl, tg, tp); });
      },
      arg("logits"), arg("target"), arg("weight"), arg("loss"), arg("grad"), arg("per_sample"),
      "Binary cross-entropy on logits; writes loss[0], and grad / per_sample unless None");
  m.def(
      "kl_div_softened",
      [](py::handle student, py::handle teacher, double temperature, py::handle weight, py::handle loss,
         py::handle grad, py::handle per_sample, bool scale_t2) {
        Call c("kl_div_softened");
        Tensor ts = c.in(student, "student_logits"), tt = c.in(teacher, "teacher_logits");
        Tensor tw = c.opt_in(weight, "weight");
        Tensor tl = c.out(loss, "loss"), tg = c.opt_out(grad, "grad");
        Tensor tp = c.opt_out(per_sample, "per_sample");
        c.run([&] { seisoku::kl_div_softened(ts, tt, temperature, tw, tl, tg, tp, scale_t2); });
      },
      arg("student_logits"), arg("teacher_logits"), arg("temperature"), arg("weight"), arg("loss"), arg("grad"),
      arg("per_sample"), arg("scale_t2") = true,
      "KL(softmax(teacher/T) || softmax(student/T)) (times T^2 when scale_t2); writes loss[0], and grad / "
      "per_sample unless None");
}

}  // namespace seisoku::python
