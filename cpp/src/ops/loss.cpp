// Front-ends of the loss family: validate, then dispatch on the device. Values (BCE targets,
// weights) are checked only for CPU tensors, which the host can read; class indices are
// checked by the cross_entropy kernels on either device, which report the first bad row.
#include "seisoku/loss.hpp"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>

#include "core/check.hpp"
#include "core/dispatch.hpp"
#include "kernels/loss.hpp"

namespace seisoku {
namespace {

using detail::fail;

bool given(const Tensor& t) { return t.numel() != 0; }

std::string num(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

// The batch size of a float input with the batch on axis 0; rejects empty batches.
std::int64_t check_input(const char* op, const char* name, const Tensor& x, std::int64_t min_dim,
                         std::int64_t max_dim) {
  detail::check_defined(op, name, x);
  detail::check_dtype(op, name, x, {DType::float32, DType::float64});
  if (x.dim() < min_dim || x.dim() > max_dim) {
    const std::string want = min_dim == max_dim ? std::to_string(min_dim) : "at least " + std::to_string(min_dim);
    fail(op, std::string(name) + " must have " + want + " dimension(s) (batch first), got shape " +
                 shape_str(x.shape()));
  }
  if (x.shape()[0] == 0) fail(op, std::string("empty batch: ") + name + " has shape " + shape_str(x.shape()));
  if (x.numel() == 0) fail(op, std::string(name) + " has no elements per sample, shape " + shape_str(x.shape()));
  return x.shape()[0];
}

void check_companion(const char* op, const char* x_name, const Tensor& x, const char* name, const Tensor& t) {
  detail::check_defined(op, name, t);
  detail::check_same_dtype(op, x_name, x, name, t);
  detail::check_same_shape(op, x_name, x, name, t);
  detail::check_same_device(op, x_name, x, name, t);
}

void check_weight(const char* op, const char* x_name, const Tensor& x, const Tensor& weight) {
  if (!given(weight)) return;
  const std::int64_t n = x.shape()[0];
  detail::check_defined(op, "weight", weight);
  detail::check_same_dtype(op, x_name, x, "weight", weight);
  detail::check_same_device(op, x_name, x, "weight", weight);
  if (weight.shape() != Shape{n})
    fail(op, "weight must have shape (" + std::to_string(n) + ",) (one per sample), got " + shape_str(weight.shape()));
  if (weight.is_cuda()) return;
  detail::dispatch_float(weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* w = weight.data_as<T>();
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double v = static_cast<double>(w[i]);
      if (!(v >= 0.0) || !std::isfinite(v))
        fail(op, "weight must be finite and >= 0, got weight[" + std::to_string(i) + "] = " + num(v));
      total += v;
    }
    if (!(total > 0.0) || !std::isfinite(total))
      fail(op, "the sum of the weights must be positive and finite, got " + num(total));
  });
}

void check_outputs(const char* op, const char* x_name, const Tensor& x, const Tensor& loss, const Tensor& grad,
                   const Tensor& per_sample) {
  detail::check_defined(op, "loss", loss);
  detail::check_same_dtype(op, x_name, x, "loss", loss);
  detail::check_same_device(op, x_name, x, "loss", loss);
  detail::check_numel(op, "loss", loss, 1);
  if (given(grad)) check_companion(op, x_name, x, "grad", grad);
  if (given(per_sample)) {
    const std::int64_t n = x.shape()[0];
    detail::check_defined(op, "per_sample", per_sample);
    detail::check_same_dtype(op, x_name, x, "per_sample", per_sample);
    detail::check_same_device(op, x_name, x, "per_sample", per_sample);
    if (per_sample.shape() != Shape{n})
      fail(op, "per_sample must have shape (" + std::to_string(n) + ",), got " + shape_str(per_sample.shape()));
  }
}

struct Named {
  const char* name;
  const Tensor* tensor;
};

// The outputs must not overlap the inputs (kernels read them while writing) or each other.
void check_apart(const char* op, std::initializer_list<Named> inputs, const Tensor& loss, const Tensor& grad,
                 const Tensor& per_sample) {
  const Named outputs[] = {{"loss", &loss}, {"grad", &grad}, {"per_sample", &per_sample}};
  for (std::size_t a = 0; a < 3; ++a) {
    for (const Named& in : inputs)
      detail::check_no_overlap(op, outputs[a].name, *outputs[a].tensor, in.name, *in.tensor);
    for (std::size_t b = a + 1; b < 3; ++b)
      detail::check_no_overlap(op, outputs[a].name, *outputs[a].tensor, outputs[b].name, *outputs[b].tensor);
  }
}

// Front-ends see a CUDA target's value only through a copy; this runs on the error path.
std::int64_t target_at(const Tensor& target, std::int64_t row) {
  const std::size_t size = itemsize(target.dtype());
  Tensor one = Tensor::view(target.data_as<char>() + static_cast<std::size_t>(row) * size, {1}, target.dtype(),
                            target.device(), target.device_index());
  if (one.is_cuda()) one = one.to(Device::cpu);
  return target.dtype() == DType::int64 ? *one.data_as<std::int64_t>()
                                        : static_cast<std::int64_t>(*one.data_as<std::int32_t>());
}

}  // namespace

SmoothingConvention smoothing_convention_from_name(const char* op, const std::string& name) {
  if (name == "lecture") return SmoothingConvention::lecture;
  if (name == "uniform") return SmoothingConvention::uniform;
  fail(op, "argument 'convention' must be 'lecture' or 'uniform', got '" + name + "'" +
               (name == "seed" ? " (the lecture's convention, true class 1 - eps and eps / (K - 1) elsewhere, is "
                                 "'lecture')"
                               : ""));
}

void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                   const Tensor& grad, const Tensor& per_sample, double label_smoothing,
                   SmoothingConvention convention) {
  const char* op = "cross_entropy";
  const std::int64_t n = check_input(op, "logits", logits, 2, 2);
  const std::int64_t k = logits.shape()[1];
  if (!(label_smoothing >= 0.0 && label_smoothing < 1.0))
    fail(op, "argument 'label_smoothing' must be in [0, 1), got " + num(label_smoothing));
  if (convention != SmoothingConvention::lecture && convention != SmoothingConvention::uniform)
    fail(op, "argument 'convention' must be SmoothingConvention::lecture or ::uniform, got " +
                 std::to_string(static_cast<int>(convention)));
  if (convention == SmoothingConvention::lecture && label_smoothing > 0.0 && k < 2)
    fail(op, "the lecture smoothing convention (eps / (K - 1)) needs K >= 2 classes, got logits of shape " +
                 shape_str(logits.shape()));
  detail::check_defined(op, "target", target);
  detail::check_dtype(op, "target", target, {DType::int64, DType::int32});
  detail::check_same_device(op, "logits", logits, "target", target);
  if (target.shape() != Shape{n})
    fail(op, "target must have shape (" + std::to_string(n) + ",) (one class index per row of logits " +
                 shape_str(logits.shape()) + "), got " + shape_str(target.shape()));
  check_weight(op, "logits", logits, weight);
  check_outputs(op, "logits", logits, loss, grad, per_sample);
  check_apart(op, {{"logits", &logits}, {"target", &target}, {"weight", &weight}}, loss, grad, per_sample);
  const detail::SmoothedTarget q = detail::smoothed_target(label_smoothing, convention, k);
  std::int64_t bad_row = -1;
  if (logits.is_cuda()) {
#if defined(SEISOKU_WITH_CUDA)
    bad_row = gpu::cross_entropy(logits, target, weight, loss, grad, per_sample, q);
#else
    detail::throw_no_cuda();
#endif
  } else {
    bad_row = cpu::cross_entropy(logits, target, weight, loss, grad, per_sample, q);
  }
  if (bad_row >= 0)
    fail(op, "argument 'target' must hold class indices in [0, " + std::to_string(k) + "), got target[" +
                 std::to_string(bad_row) + "] = " + std::to_string(target_at(target, bad_row)));
}

void mse_loss(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss,
              const Tensor& grad, const Tensor& per_sample) {
  const char* op = "mse_loss";
  check_input(op, "pred", pred, 1, INT64_MAX);
  check_companion(op, "pred", pred, "target", target);
  check_weight(op, "pred", pred, weight);
  check_outputs(op, "pred", pred, loss, grad, per_sample);
  check_apart(op, {{"pred", &pred}, {"target", &target}, {"weight", &weight}}, loss, grad, per_sample);
  SEISOKU_DISPATCH(pred, mse_loss, pred, target, weight, loss, grad, per_sample);
}

void bce_with_logits(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                     const Tensor& grad, const Tensor& per_sample) {
  const char* op = "bce_with_logits";
  check_input(op, "logits", logits, 1, INT64_MAX);
  check_companion(op, "logits", logits, "target", target);
  check_weight(op, "logits", logits, weight);
  check_outputs(op, "logits", logits, loss, grad, per_sample);
  check_apart(op, {{"logits", &logits}, {"target", &target}, {"weight", &weight}}, loss, grad, per_sample);
  if (!target.is_cuda()) {
    detail::dispatch_float(target.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* t = target.data_as<T>();
      for (std::int64_t i = 0, m = target.numel(); i < m; ++i)
        if (!(t[i] >= T(0) && t[i] <= T(1)))
          fail(op, "argument 'target' must be in [0, 1], got " + num(static_cast<double>(t[i])) + " at flat index " +
                       std::to_string(i));
    });
  }
  SEISOKU_DISPATCH(logits, bce_with_logits, logits, target, weight, loss, grad, per_sample);
}

void kl_div_softened(const Tensor& student_logits, const Tensor& teacher_logits, double temperature,
                     const Tensor& weight, const Tensor& loss, const Tensor& grad, const Tensor& per_sample,
                     bool scale_t2) {
  const char* op = "kl_div_softened";
  if (!(temperature > 0.0) || !std::isfinite(temperature))
    fail(op, "argument 'temperature' must be finite and > 0, got " + num(temperature));
  check_input(op, "student_logits", student_logits, 2, 2);
  check_companion(op, "student_logits", student_logits, "teacher_logits", teacher_logits);
  check_weight(op, "student_logits", student_logits, weight);
  check_outputs(op, "student_logits", student_logits, loss, grad, per_sample);
  check_apart(op, {{"student_logits", &student_logits}, {"teacher_logits", &teacher_logits}, {"weight", &weight}},
              loss, grad, per_sample);
  SEISOKU_DISPATCH(student_logits, kl_div_softened, student_logits, teacher_logits, temperature, weight, loss, grad,
                   per_sample, scale_t2);
}

}  // namespace seisoku
