#pragma once
// An optimizer over a module's parameters for C++ training loops: one fused seisoku::optim_step
// per step over every parameter (see seisoku/optim.hpp), following the gradient rule of
// parameter.hpp: zero_grad() marks, and a gradient still marked when step() runs counts as zero.
#include <string>
#include <utility>
#include <vector>

#include "seisoku/nn/module.hpp"
#include "seisoku/optim.hpp"

namespace seisoku::nn {

class SEISOKU_API Optimizer {
 public:
  // One parameter group: penalties and max-norm apply where Parameter::regularize (weights, not
  // biases); messages use the dotted names; the state buffers start at zero.
  Optimizer(const NamedParameters& params, const OptimHyper& hyper);
  Optimizer(const Module& module, const OptimHyper& hyper);
  // One step; reads each parameter's current value and gradient.
  OptimStepResult step(const OptimStepOptions& options = {});
  void zero_grad();
  // The group (hyper-parameters, state buffers and step counts) to read or change.
  OptimGroup& group() { return group_; }
  const std::vector<ParameterPtr>& parameters() const { return params_; }

 private:
  std::vector<ParameterPtr> params_;
  OptimGroup group_;
};

}  // namespace seisoku::nn
