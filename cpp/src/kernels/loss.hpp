#pragma once
// Kernel entry points of the loss family (cpp/src/cpu/loss.cpp, cuda/loss.cu); their shared
// math is kernels/loss_math.hpp. Arguments are validated by cpp/src/ops/loss.cpp; an optional
// Tensor (weight, grad, per_sample) is absent when it has no elements. cross_entropy receives
// the smoothed target (kernels/loss_math.hpp) and returns the first row whose target is not a
// class index in [0, K), or -1: the CPU kernel checks before it writes anything (and then
// writes nothing), the CUDA kernel while it computes (such a row's outputs are NaN).
#include <cstdint>

#include "kernels/core.hpp"
#include "kernels/loss_math.hpp"

namespace seisoku {

#define SEISOKU_LOSS_KERNEL_DECLS                                                                             \
  std::int64_t cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight,                 \
                             const Tensor& loss, const Tensor& grad, const Tensor& per_sample,                 \
                             const detail::SmoothedTarget& q);                                                 \
  void mse_loss(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss,              \
                const Tensor& grad, const Tensor& per_sample);                                                 \
  void bce_with_logits(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,    \
                       const Tensor& grad, const Tensor& per_sample);                                          \
  void kl_div_softened(const Tensor& student_logits, const Tensor& teacher_logits, double temperature,          \
                       const Tensor& weight, const Tensor& loss, const Tensor& grad, const Tensor& per_sample,  \
                       bool scale_t2);

namespace cpu {
SEISOKU_LOSS_KERNEL_DECLS
}  // namespace cpu

namespace gpu {
SEISOKU_LOSS_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_LOSS_KERNEL_DECLS

}  // namespace seisoku
