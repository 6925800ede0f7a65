#pragma once
// Fused, multi-tensor optimizer steps with the norm penalties inside the same pass over memory.
//
// One call of optim_step updates every tensor of one or more parameter groups: the gradient is
// clipped (by value, and by the global norm of all groups), the penalties of the tensors marked
// `penalize` are folded in (coupled L2: g += l2 w; L1 subgradient: g += l1 sign(w); decoupled
// weight decay: w *= 1 - lr wd), the optimizer rule updates w and its state buffers, then the
// proximal L1 step (soft-thresholding, exact zeros) and the max-norm projection run on the new
// weights while they are still in registers or cache. SGD with momentum and L2 reads w, g, m and
// writes w, m once each. The rules follow torch.optim (same defaults, same order of operations).
//
// The proximal L1 threshold is l1 times the optimizer's per-coordinate step size: lr for SGD,
// lr / (sqrt(v_hat) + eps) for Adam/AdamW, lr / (sqrt(v) + eps) for RMSprop (centered: of the
// centered average), clr / (sqrt(sum) + eps) for Adagrad, so that it is the proximal step of
// l1 ||w||_1 in the metric the optimizer preconditions with.
//
// Max-norm: after the update each unit's incoming weight vector, the slice w[..., j, ...] at
// index j of `max_norm_axis`, is projected onto ||w_j||_2 <= max_norm. Axis 0 (the default: the
// fan-in rows of a Linear (out, in) or Conv2d (out, in, kh, kw) weight) is fused per row; other
// axes take one more read and write of that tensor after the update.
//
// Float32 and float64; every tensor of a group has the group's dtype and device. Results do not
// depend on the thread count, and the CUDA kernels compute the same roundings as the CPU ones.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "seisoku/tensor.hpp"

namespace seisoku {

enum class OptimKind { sgd, adam, rmsprop, adagrad };
// L1 as a subgradient added to the gradient, or as a proximal step after the update.
enum class L1Mode { proximal, subgradient };
// What optim_step does when a gradient holds NaN or Inf. In every policy but ignore, no NaN or
// Inf of a gradient ever reaches a parameter or its optimizer state.
//
// raise (the default): the check rides on the step's own pass, at no extra read of memory. An
// element whose gradient is NaN or +-Inf is not updated: its parameter value and state buffer
// values stay exactly as they were (in a tensor with fused max-norm rows, max_norm_axis 0: the
// whole row holding it, whose gradient is scanned just before the row is updated). Every other
// element, of every tensor and group, is stepped. Then optim_step throws std::invalid_argument
// naming the first such tensor (group order, then tensor order), its count of non-finite values
// and how many other tensors had some. So after the throw: every tensor with a finite gradient
// has taken the step (and counts it); a tensor with a non-finite gradient keeps its step count,
// its elements (rows) with finite gradients were stepped with this step's coefficients, and a
// max-norm projection along an axis other than 0 is not applied to it. The outcome depends
// neither on the thread count nor on the device. (Stopping at the first non-finite value instead
// would leave a state that depends on how the threads reached it.)
// raise with clip_grad_norm > 0: the global norm pass reads every gradient before the step
// anyway and the check rides on it: the throw comes before anything is changed.
// skip: one more read of every gradient before the step (or the norm pass, with clipping); when
// one holds NaN or Inf, nothing is changed (parameters, state, step counts) and optim_step
// returns applied = false.
// ignore: no check; NaN then reaches the weights, as in torch.optim.
enum class NonFinite { raise, skip, ignore };

// Hyper-parameters of one parameter group. Fields of other kinds are ignored.
struct OptimHyper {
  OptimKind kind = OptimKind::sgd;
  double lr = 1e-3;
  // SGD (momentum also for RMSprop)
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  // Adam / AdamW
  double beta1 = 0.9;
  double beta2 = 0.999;
  bool amsgrad = false;
  // RMSprop
  double alpha = 0.99;
  bool centered = false;
  // Adagrad
  double lr_decay = 0.0;
  double initial_accumulator = 0.0;
  // Adam, RMSprop, Adagrad
  double eps = 1e-8;
  // Penalties, on the tensors marked `penalize` only.
  double l2 = 0.0;            // coupled L2 (Omega = l2/2 ||w||^2): g += l2 w
  double weight_decay = 0.0;  // decoupled: w *= 1 - lr * weight_decay (AdamW, SGDW)
  double l1 = 0.0;            // Omega = l1 ||w||_1
  L1Mode l1_mode = L1Mode::proximal;
  double max_norm = 0.0;  // 0: no constraint
  int max_norm_axis = 0;  // negative counts from the end
  // Gradient: clamp each element to [-clip_value, clip_value] (infinity: off).
  double clip_value = std::numeric_limits<double>::infinity();
};

// One parameter group: its tensors, their gradients and optimizer state.
struct OptimGroup {
  OptimHyper hyper;
  std::vector<Tensor> params;
  std::vector<Tensor> grads;
  // state[slot][i]: buffer `slot` (see optim_state_names) of params[i]; optim_init_state fills it.
  std::vector<std::vector<Tensor>> state;
  // Per tensor: 1 when the penalties and max-norm apply. Empty: tensors of 2 or more dimensions
  // (weights), not 1-D ones (biases).
  std::vector<std::uint8_t> penalize;
  // Per tensor step counts, incremented by each applied step. Empty: all zero.
  std::vector<std::int64_t> steps;
  // Optional per tensor names for messages.
  std::vector<std::string> names;
};

// Options of one step over all groups.
struct OptimStepOptions {
  double clip_grad_norm = 0.0;  // > 0: scale all gradients so that their global 2-norm is at most this
  NonFinite nonfinite = NonFinite::raise;
};

struct OptimStepResult {
  bool applied = true;  // false when a non-finite gradient made NonFinite::skip skip the step
  double grad_norm = std::numeric_limits<double>::quiet_NaN();  // global 2-norm, when it was computed
};

// Per tensor statistics of the weights, and the penalty value of the group.
struct OptimStats {
  std::vector<double> abs_sum;     // ||w||_1
  std::vector<double> sq_sum;      // ||w||_2^2
  std::vector<std::int64_t> nonzero;  // L0 count
  double penalty = 0.0;            // sum over penalized tensors of l1 ||w||_1 + l2/2 ||w||_2^2
};

// Names of the state buffers a group with these hyper-parameters keeps, in slot order.
SEISOKU_API std::vector<std::string> optim_state_names(const OptimHyper& hyper);
// Throws std::invalid_argument ("[optim_step] ...") unless the hyper-parameters are valid.
SEISOKU_API void optim_check_hyper(const OptimHyper& hyper);
// Allocates the state buffers of a group on its tensors' device (zeros; Adagrad's accumulator
// starts at initial_accumulator) and resets the step counts.
SEISOKU_API void optim_init_state(OptimGroup& group);
// One optimizer step over every tensor of every group, clipping by the global norm of them all.
SEISOKU_API OptimStepResult optim_step(const std::vector<OptimGroup*>& groups, const OptimStepOptions& options = {});
// One optimizer step over one group.
SEISOKU_API OptimStepResult optim_step(OptimGroup& group, const OptimStepOptions& options = {});
// Fills every gradient of the group with zeros.
SEISOKU_API void optim_zero_grad(const OptimGroup& group);
// ||w||_1, ||w||_2^2 and the non-zero count of each parameter, and the group's penalty value.
SEISOKU_API OptimStats optim_stats(const OptimGroup& group);
// Projects each slice w[..., j, ...] at index j of `axis` onto the 2-norm ball of radius max_norm.
SEISOKU_API void max_norm_project(const Tensor& w, double max_norm, int axis = 0);

}  // namespace seisoku
