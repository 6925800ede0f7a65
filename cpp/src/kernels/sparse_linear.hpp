#pragma once
// Kernel entry points of the sparse-linear family (cpp/src/cpu/sparse_linear.cpp,
// cuda/sparse_linear.cu). Arguments are validated by cpp/src/ops/sparse_linear.cpp; the
// pattern and values are on the device of x.
//   sparse_linear: out = act(x W^T + bias) (bias may be empty; no dropout here);
//   sparse_linear_backward: grad_x = grad_z W (skipped when undefined), grad_values (+)= the
//     entries of grad_z^T x at the nonzeros (skipped when undefined).
#include "kernels/core.hpp"
#include "seisoku/activation.hpp"
#include "seisoku/sparse_linear.hpp"

namespace seisoku {

#define SEISOKU_SPARSE_LINEAR_KERNEL_DECLS                                                                   \
  void sparse_linear(const Tensor& x, const SparsePattern& w, const Tensor& values, const Tensor& bias,      \
                     const Tensor& out, Activation act, double slope);                                       \
  void sparse_linear_backward(const Tensor& grad_z, const Tensor& x, const SparsePattern& w,                 \
                              const Tensor& values, const Tensor& grad_x, const Tensor& grad_values,         \
                              bool accumulate);

namespace cpu {
SEISOKU_SPARSE_LINEAR_KERNEL_DECLS
}  // namespace cpu
namespace gpu {
SEISOKU_SPARSE_LINEAR_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_SPARSE_LINEAR_KERNEL_DECLS

}  // namespace seisoku
