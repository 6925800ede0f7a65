// Loss objects over the fused loss ops, and the optimizer of C++ training loops.
#include <cmath>
#include <string>

#include "core/check.hpp"
#include "nn/common.hpp"
#include "seisoku/nn/loss.hpp"
#include "seisoku/nn/optimizer.hpp"

namespace seisoku::nn {
namespace {
enum Buffer : std::size_t { kLoss, kGrad };
}  // namespace

// ---- losses ----

Loss::~Loss() = default;

Tensor Loss::backward() {
  if (!grad_.defined()) detail::fail(type_name(), "backward() needs a loss computed first");
  return grad_;
}

void Loss::prepare(const Tensor& pred) {
  if (!pred.defined()) detail::fail(type_name(), "pred is missing");
  loss_ = buffers_.get(kLoss, {}, pred.dtype(), pred.device(), pred.device_index());
  grad_ = buffers_.like(kGrad, pred.shape(), pred);
}

CrossEntropyLoss::CrossEntropyLoss(double label_smoothing, SmoothingConvention convention)
    : smoothing_(label_smoothing), convention_(convention) {
  if (!(label_smoothing >= 0.0 && label_smoothing < 1.0))
    detail::fail("CrossEntropyLoss", "argument 'label_smoothing' must be in [0, 1), got " + number(label_smoothing));
}

Tensor CrossEntropyLoss::forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight) {
  prepare(pred);
  cross_entropy(pred, target, sample_weight, loss_, grad_, Tensor(), smoothing_, convention_);
  return loss_;
}

Tensor MSELoss::forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight) {
  prepare(pred);
  mse_loss(pred, target, sample_weight, loss_, grad_, Tensor());
  return loss_;
}

Tensor BCEWithLogitsLoss::forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight) {
  prepare(pred);
  bce_with_logits(pred, target, sample_weight, loss_, grad_, Tensor());
  return loss_;
}

DistillationKLLoss::DistillationKLLoss(double temperature, bool scale_t2)
    : temperature_(temperature), scale_t2_(scale_t2) {
  if (!(temperature > 0.0 && std::isfinite(temperature)))
    detail::fail("DistillationKLLoss", "argument 'temperature' must be finite and > 0, got " + number(temperature));
}

Tensor DistillationKLLoss::forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight) {
  prepare(pred);
  kl_div_softened(pred, target, temperature_, sample_weight, loss_, grad_, Tensor(), scale_t2_);
  return loss_;
}

// ---- Optimizer ----

Optimizer::Optimizer(const NamedParameters& params, const OptimHyper& hyper) {
  optim_check_hyper(hyper);
  group_.hyper = hyper;
  for (const auto& [name, p] : params) {
    if (!p) detail::fail("Optimizer", "parameter '" + name + "' is null");
    params_.push_back(p);
    group_.params.push_back(p->value());
    group_.grads.push_back(p->grad());
    group_.penalize.push_back(p->regularize ? 1 : 0);
    group_.names.push_back(name);
  }
  optim_init_state(group_);
}

Optimizer::Optimizer(const Module& module, const OptimHyper& hyper) : Optimizer(module.named_parameters(), hyper) {}

OptimStepResult Optimizer::step(const OptimStepOptions& options) {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    group_.params[i] = params_[i]->value();
    group_.grads[i] = params_[i]->grad();
    group_.penalize[i] = params_[i]->regularize ? 1 : 0;
  }
  return optim_step(group_, options);
}

void Optimizer::zero_grad() {
  for (const ParameterPtr& p : params_) p->zero_grad();
}

}  // namespace seisoku::nn
