#pragma once
// Kernel entry points of the optim family (cpp/src/cpu/optim.cpp, cuda/optim.cu) and the plan
// the front-end (cpp/src/optim.cpp) hands them: per tensor pointers and coefficients already
// resolved from the group's hyper-parameters, penalize flags and step counts (in double; the
// kernels round them once to the tensor dtype).
#include <cstdint>
#include <vector>

#include "kernels/core.hpp"
#include "seisoku/optim.hpp"

namespace seisoku {
namespace detail {

// Reductions (gradient norm, weight statistics, max-norm rows) sum 32 lanes, lane l taking
// elements l, l + 32, ... of a block in order, then fold the lanes as a warp shuffle tree does;
// blocks of kOptimBlock elements are combined in order. The CPU and the GPU so add the same
// numbers in the same order.
constexpr int kOptimLanes = 32;
constexpr std::int64_t kOptimBlock = 8192;

// Elementwise tensors are handed to the CUDA kernel in chunks of kOptimChunk elements, max-norm
// tensors in chunks of max(1, kOptimChunk / row) whole rows.
constexpr std::int64_t kOptimChunk = 16384;

// One tensor of a fused step. State slots by role: SGD s0 = momentum_buffer; Adam s0 = exp_avg,
// s1 = exp_avg_sq, s2 = max_exp_avg_sq; RMSprop s0 = square_avg, s1 = momentum_buffer,
// s2 = grad_avg; Adagrad s0 = sum. Unused slots are null.
struct OptimTensor {
  void* w = nullptr;
  const void* g = nullptr;
  void* s0 = nullptr;
  void* s1 = nullptr;
  void* s2 = nullptr;
  std::int64_t numel = 0;
  std::int64_t row = 0;  // > 0: max-norm over contiguous rows of `row` elements, fused; 0: none
  double lr = 0.0;         // the step's learning rate (Adagrad: lr / (1 + (step - 1) lr_decay))
  double step_size = 0.0;  // Adam: lr / (1 - beta1^step); others: lr
  double bc2_sqrt = 1.0;   // Adam: sqrt(1 - beta2^step)
  double l2 = 0.0;         // coupled L2
  double l1_sub = 0.0;     // L1 subgradient coefficient
  double prox = 0.0;       // proximal L1: l1 * lr (divided per coordinate by the preconditioner)
  double decay = 1.0;      // decoupled weight decay multiplier 1 - lr wd
  double max_norm = 0.0;
  int first = 0;  // SGD: first step with momentum (the buffer starts as the gradient)
};

// Constants of one group step shared by its tensors (plain data, passed to CUDA kernels by value).
struct OptimScalars {
  double mu = 0.0, damp1 = 1.0;                        // momentum, 1 - dampening
  double beta1c = 0.1, beta2 = 0.999, beta2c = 0.001;  // 1 - beta1, beta2, 1 - beta2
  double alpha = 0.99, alphac = 0.01;                  // RMSprop alpha, 1 - alpha
  double eps = 1e-8;
  double grad_scale = 1.0;  // global-norm clipping factor
  double clip_value = 0.0;  // +inf: off
};

// Elements per CUDA chunk of a tensor with max-norm rows of `row` elements (0: none).
inline std::int64_t optim_chunk(std::int64_t row) {
  return row > 0 ? (row >= kOptimChunk ? row : kOptimChunk / row * row) : kOptimChunk;
}

// One group step: the variant the kernels compile, shared constants and the tensors.
struct OptimPlan {
  OptimKind kind = OptimKind::sgd;
  DType dtype = DType::float32;
  int device_index = 0;
  bool momentum = false, nesterov = false, amsgrad = false, centered = false, prox = false;
  OptimScalars s;
  std::vector<OptimTensor> tensors;
};

}  // namespace detail

#define SEISOKU_OPTIM_KERNEL_DECLS                                                                            \
  /* nonfinite null: no check. Else the fused check: nonfinite[i] += the NaN / Inf count of tensor i's */     \
  /* gradient; those elements (max-norm tensors: those rows) keep their values and state. */                 \
  void optim_step(const detail::OptimPlan& plan, std::int64_t* nonfinite);                                    \
  /* Per tensor: count of NaN / Inf elements and, when need_sumsq, the sum of squares (blocks in order). */ \
  void optim_grad_check(const std::vector<Tensor>& grads, bool need_sumsq, std::vector<double>& sumsq,       \
                        std::vector<std::int64_t>& nonfinite);                                                \
  /* Per tensor: sum |w|, sum w^2 and the non-zero count. */                                                  \
  void optim_stats(const std::vector<Tensor>& params, std::vector<double>& abs_sum, std::vector<double>& sq_sum, \
                   std::vector<std::int64_t>& nonzero);                                                      \
  void max_norm_project(const Tensor& w, double max_norm, std::int64_t outer, std::int64_t units,           \
                        std::int64_t inner);

namespace cpu {
SEISOKU_OPTIM_KERNEL_DECLS
}  // namespace cpu
namespace gpu {
SEISOKU_OPTIM_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_OPTIM_KERNEL_DECLS

}  // namespace seisoku
