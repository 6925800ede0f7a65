#pragma once
// Kernel entry points of the activation, mask and linear-epilogue families (see kernels/core.hpp).
#include <cstdint>

#include "kernels/core.hpp"
#include "seisoku/activation.hpp"
#include "seisoku/linear.hpp"

namespace seisoku {

#define SEISOKU_NN_KERNEL_DECLS                                                                                   \
  void activation(const Tensor& x, const Tensor& out, Activation act, double slope);                             \
  void activation_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in, Activation act,       \
                           double slope);                                                                        \
  void softmax(const Tensor& x, const Tensor& out);                                                              \
  void softmax_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in);                         \
  void dropout(const Tensor& x, const Tensor& out, std::uint32_t keep_bound, std::uint64_t seed,                 \
               std::uint64_t offset, double scale, std::uint64_t first);                                         \
  void gaussian_noise(const Tensor& x, const Tensor& out, double stddev, std::uint64_t seed, std::uint64_t offset); \
  void bias_act_dropout(const Tensor& z, const Tensor& bias, const Tensor& out, const Epilogue& e);              \
  void bias_act_dropout_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_z, const Epilogue& e);

namespace cpu {
SEISOKU_NN_KERNEL_DECLS
}  // namespace cpu
namespace gpu {
SEISOKU_NN_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_NN_KERNEL_DECLS

}  // namespace seisoku
