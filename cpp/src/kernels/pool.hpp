#pragma once
// Kernel entry points of the pooling family (cpp/src/cpu/pool.cpp, cuda/pool.cu) and the
// window arithmetic both devices share, so that CPU and GPU visit the same elements in the
// same order. Arguments are validated by cpp/src/pool.cpp.
#include <cstdint>

#include "kernels/core.hpp"

namespace seisoku {

// Sizes of one pooling call; every window holds at least one input element.
struct PoolGeometry {
  std::int64_t n, c, h, w, ho, wo, kh, kw, sh, sw, ph, pw;
};

inline PoolGeometry pool_geometry(const Shape& x_shape, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                                  std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  PoolGeometry g{};
  g.n = x_shape[0], g.c = x_shape[1], g.h = x_shape[2], g.w = x_shape[3];
  g.kh = kh, g.kw = kw, g.sh = stride_h, g.sw = stride_w, g.ph = pad_h, g.pw = pad_w;
  g.ho = (g.h + 2 * pad_h - kh) / stride_h + 1;
  g.wo = (g.w + 2 * pad_w - kw) / stride_w + 1;
  return g;
}

// The window of output (oh, ow) clipped to the input: rows [h0, h1), columns [w0, w1).
struct PoolWindow {
  std::int64_t h0, h1, w0, w1;
};

SEISOKU_HD PoolWindow pool_window(const PoolGeometry& g, std::int64_t oh, std::int64_t ow) {
  const std::int64_t hs = oh * g.sh - g.ph, ws = ow * g.sw - g.pw;
  return {hs < 0 ? 0 : hs, hs + g.kh < g.h ? hs + g.kh : g.h, ws < 0 ? 0 : ws, ws + g.kw < g.w ? ws + g.kw : g.w};
}

// Maximum of the window in `plane` (H x W) and its flat index: ties keep the first in
// row-major order, the first NaN wins.
template <class T>
SEISOKU_HD T pool_window_max(const T* plane, const PoolGeometry& g, const PoolWindow& win, std::int64_t* index) {
  std::int64_t best_i = win.h0 * g.w + win.w0;
  T best = plane[best_i];
  for (std::int64_t ih = win.h0; ih < win.h1; ++ih) {
    for (std::int64_t iw = win.w0; iw < win.w1; ++iw) {
      const T v = plane[ih * g.w + iw];
      if (v > best || (v != v && best == best)) {
        best = v;
        best_i = ih * g.w + iw;
      }
    }
  }
  *index = best_i;
  return best;
}

SEISOKU_HD std::int64_t pool_divisor(const PoolGeometry& g, const PoolWindow& win, bool count_include_pad) {
  return count_include_pad ? g.kh * g.kw : (win.h1 - win.h0) * (win.w1 - win.w0);
}

// Mean of the window: the sum in row-major order divided by the divisor.
template <class T>
SEISOKU_HD T pool_window_mean(const T* plane, const PoolGeometry& g, const PoolWindow& win, bool count_include_pad) {
  T acc = T(0);
  for (std::int64_t ih = win.h0; ih < win.h1; ++ih)
    for (std::int64_t iw = win.w0; iw < win.w1; ++iw) acc += plane[ih * g.w + iw];
  return acc / static_cast<T>(pool_divisor(g, win, count_include_pad));
}

// Gradient of avg_pool2d at input (ih, iw) of one plane: the sum of grad / divisor over the
// windows that hold it, in row-major output order.
template <class T>
SEISOKU_HD T avg_pool_gather(const T* grad_plane, const PoolGeometry& g, std::int64_t ih, std::int64_t iw,
                             bool count_include_pad) {
  // Outputs oh with oh * sh - ph <= ih < oh * sh - ph + kh.
  const std::int64_t th = ih + g.ph, tw = iw + g.pw;  // >= 0
  const std::int64_t oh0 = th - g.kh + 1 <= 0 ? 0 : (th - g.kh + 1 + g.sh - 1) / g.sh;
  const std::int64_t ow0 = tw - g.kw + 1 <= 0 ? 0 : (tw - g.kw + 1 + g.sw - 1) / g.sw;
  const std::int64_t oh1 = th / g.sh + 1 < g.ho ? th / g.sh + 1 : g.ho;
  const std::int64_t ow1 = tw / g.sw + 1 < g.wo ? tw / g.sw + 1 : g.wo;
  T acc = T(0);
  for (std::int64_t oh = oh0; oh < oh1; ++oh)
    for (std::int64_t ow = ow0; ow < ow1; ++ow)
      acc += grad_plane[oh * g.wo + ow] /
             static_cast<T>(pool_divisor(g, pool_window(g, oh, ow), count_include_pad));
  return acc;
}

#define SEISOKU_POOL_KERNEL_DECLS                                                                              \
  void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices, std::int64_t kh, std::int64_t kw, \
                  std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w);       \
  void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Tensor& grad_x);              \
  void avg_pool2d(const Tensor& x, const Tensor& out, std::int64_t kh, std::int64_t kw, std::int64_t stride_h, \
                  std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w, bool count_include_pad);      \
  void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_x, std::int64_t kh, std::int64_t kw,    \
                           std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h,                 \
                           std::int64_t pad_w, bool count_include_pad);

namespace cpu {
SEISOKU_POOL_KERNEL_DECLS
}  // namespace cpu

namespace gpu {
SEISOKU_POOL_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_POOL_KERNEL_DECLS

}  // namespace seisoku
