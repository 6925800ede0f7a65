#pragma once
// Kernel entry points of the quant family (cpp/src/cpu/quant.cpp, cuda/quant.cu); their shared
// math is kernels/quant_math.hpp. Arguments are validated by cpp/src/ops/quant.cpp.
// quantize_fixed returns the index of the first NaN or infinite element of x, or -1 (the codes
// written for such an input are unspecified; the front-end throws).
#include <cstdint>

#include "kernels/core.hpp"
#include "kernels/quant_math.hpp"

namespace seisoku {

#define SEISOKU_QUANT_KERNEL_DECLS                                                                     \
  std::int64_t quantize_fixed(const Tensor& x, const Tensor& out, int frac_bits, Rounding rounding,    \
                              std::uint64_t seed, std::uint64_t offset);                               \
  void dequantize_fixed(const Tensor& codes, const Tensor& out, int frac_bits);

namespace cpu {
SEISOKU_QUANT_KERNEL_DECLS
}  // namespace cpu

namespace gpu {
SEISOKU_QUANT_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_QUANT_KERNEL_DECLS

}  // namespace seisoku
