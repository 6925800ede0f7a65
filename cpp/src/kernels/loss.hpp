#pragma once
// Kernel entry points of the loss family (cpp/src/cpu/loss.cpp, cuda/loss.cu). Arguments are
// validated by cpp/src/loss.cpp; an optional Tensor (weight, grad, per_sample) is absent when
// it has no elements. cross_entropy receives the smoothed target as two probabilities:
// q_true for the labelled class and q_other for every other class.
#include "kernels/core.hpp"

namespace seisoku {

#define SEISOKU_LOSS_KERNEL_DECLS                                                                             \
  void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,     \
                     const Tensor& grad, const Tensor& per_sample, double q_true, double q_other);             \
  void mse(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss, const Tensor& grad, \
           const Tensor& per_sample);                                                                          \
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
