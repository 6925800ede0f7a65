#pragma once
// Kernel entry points of the convolution family (cpp/src/cpu/conv.cpp, cuda/conv.cu) and the
// geometry they share. Arguments are validated by cpp/src/conv.cpp.
#include <cstdint>

#include "kernels/core.hpp"

namespace seisoku {

// Sizes of one conv2d call; K = C * kh * kw is the im2col patch length, L = Ho * Wo.
struct ConvGeometry {
  std::int64_t n, c, h, w, o, kh, kw, ho, wo, sh, sw, ph, pw;
  constexpr std::int64_t k() const { return c * kh * kw; }
  constexpr std::int64_t l() const { return ho * wo; }
};

inline ConvGeometry conv_geometry(const Tensor& x, const Tensor& weight, std::int64_t stride_h, std::int64_t stride_w,
                                  std::int64_t pad_h, std::int64_t pad_w) {
  ConvGeometry g{};
  g.n = x.shape()[0], g.c = x.shape()[1], g.h = x.shape()[2], g.w = x.shape()[3];
  g.o = weight.shape()[0], g.kh = weight.shape()[2], g.kw = weight.shape()[3];
  g.sh = stride_h, g.sw = stride_w, g.ph = pad_h, g.pw = pad_w;
  g.ho = (g.h + 2 * pad_h - g.kh) / stride_h + 1;
  g.wo = (g.w + 2 * pad_w - g.kw) / stride_w + 1;
  return g;
}

#define SEISOKU_CONV_KERNEL_DECLS                                                                            \
  void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out,                  \
              std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w);        \
  void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& grad_x,  \
                       const Tensor& grad_weight, const Tensor& grad_bias, std::int64_t stride_h,           \
                       std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w, bool accumulate);

namespace cpu {
SEISOKU_CONV_KERNEL_DECLS
}  // namespace cpu

namespace gpu {
SEISOKU_CONV_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_CONV_KERNEL_DECLS

}  // namespace seisoku
