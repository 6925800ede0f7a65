#pragma once
// Kernel entry points of the int8 family (cpp/src/cpu/int8.cpp, cuda/int8.cu); their shared
// per-element math is kernels/int8_math.hpp. Arguments are validated by cpp/src/ops/int8.cpp.
//   int8_max_abs     max |x| of float32 x; *bad = index of the first NaN or infinite element or -1
//   quantize_int8    out = code(x * inv_scale); returns the first NaN index or -1
//   int8_gemm        y = epilogue(xq @ W^T) (float32 y; int8 codes code(y, out_inv) when
//                    out_inv > 0) or the raw int32 product (acc_only)
//   fake_quantize_int8(_backward)  see seisoku/int8.hpp; scales 1 or x.shape[0] elements
//   int8_im2col      cols (N * Ho * Wo, C * kh * kw) int8 = the patches of xq (N, C, H, W) int8
//   int8_rows_to_nchw  y (N, O, Ho, Wo) = rows (N * Ho * Wo, O), float32
#include <cstdint>

#include "kernels/conv.hpp"
#include "kernels/core.hpp"
#include "kernels/int8_math.hpp"
#include "seisoku/int8.hpp"

namespace seisoku {

#define SEISOKU_INT8_KERNEL_DECLS                                                                             \
  float int8_max_abs(const Tensor& x, std::int64_t* bad);                                                    \
  std::int64_t quantize_int8(const Tensor& x, const Tensor& out, float inv_scale);                           \
  void int8_gemm(const Tensor& xq, float x_scale, const Int8Weight& w, const Tensor& bias, const Tensor& y,   \
                 bool relu, bool acc_only, float out_inv);                                                    \
  void fake_quantize_int8(const Tensor& x, const Tensor& scales, const Tensor& y);                           \
  void fake_quantize_int8_backward(const Tensor& grad, const Tensor& x, const Tensor& scales, const Tensor& gx); \
  void int8_im2col(const Tensor& xq, const Tensor& cols, const ConvGeometry& g);                               \
  void int8_rows_to_nchw(const Tensor& rows, const Tensor& y);

namespace cpu {
SEISOKU_INT8_KERNEL_DECLS
// The kernel names and their run-time choice (see seisoku::int8_kernel).
enum class Int8Kernel { scalar, avx2, avx512_vnni };
bool int8_kernel_supported(Int8Kernel k);
Int8Kernel int8_kernel_current();
void int8_kernel_set(Int8Kernel k);
}  // namespace cpu

namespace gpu {
SEISOKU_INT8_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_INT8_KERNEL_DECLS

}  // namespace seisoku
