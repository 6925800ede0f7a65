// CPU kernels of max_pool2d, avg_pool2d and their backward ops. Forward: one task per output
// row (n, c, oh), each window scanned in row-major order (avg: the helper of kernels/pool.hpp
// that the CUDA twin shares; max: all outputs of the row at once, same semantics). Backward: one task per (n, c) plane, which zeroes its grad_x
// plane and adds into it output by output in row-major order (avg: grad / divisor over the
// window; max: grad at the index), so each input pixel sums its contributions in a fixed
// order, the order of the CUDA twin's gathers: same bits on both devices.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/dispatch.hpp"
#include "kernels/pool.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {

namespace {

// One output row of max pooling, vectorized over the outputs: every output starts from the
// first element of its window, then the window's elements are visited in row-major order
// (all outputs at once for each (ih, j)), taking v when v > best or v is the first NaN.
template <class T>
void max_pool_row(const T* plane, const PoolGeometry& g, std::int64_t oh, T* __restrict out,
                  std::int64_t* __restrict idx) {
  const PoolWindow rows = pool_window(g, oh, 0);
  for (std::int64_t ow = 0; ow < g.wo; ++ow) {
    const std::int64_t first = rows.h0 * g.w + std::max<std::int64_t>(0, ow * g.sw - g.pw);
    out[ow] = plane[first];
    idx[ow] = first;
  }
  for (std::int64_t ih = rows.h0; ih < rows.h1; ++ih) {
    const T* row = plane + ih * g.w;
    for (std::int64_t j = 0; j < g.kw; ++j) {
      // Outputs whose column ow * sw - pw + j lies inside [0, W).
      const std::int64_t lo = std::min(g.wo, std::max<std::int64_t>(0, (g.pw - j + g.sw - 1) / g.sw));
      const std::int64_t last = g.w - 1 + g.pw - j;
      const std::int64_t hi = last < 0 ? lo : std::max(lo, std::min(g.wo, last / g.sw + 1));
      for (std::int64_t ow = lo; ow < hi; ++ow) {
        const std::int64_t iw = ow * g.sw - g.pw + j;
        const T v = row[iw];
        const T b = out[ow];
        const bool take = (v > b) | ((v != v) & (b == b));
        out[ow] = take ? v : b;
        idx[ow] = take ? ih * g.w + iw : idx[ow];
      }
    }
  }
}

}  // namespace

void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices, std::int64_t kh, std::int64_t kw,
                std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  const PoolGeometry g = pool_geometry(x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data_as<T>();
    T* os = out.data_as<T>();
    std::int64_t* is = indices.data_as<std::int64_t>();
    parallel_tasks(g.n * g.c * g.ho, g.wo * kh * kw, [&](std::int64_t t) {
      max_pool_row(xs + (t / g.ho) * g.h * g.w, g, t % g.ho, os + t * g.wo, is + t * g.wo);
    });
  });
}

void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Tensor& grad_x) {
  const std::int64_t planes = grad_x.shape()[0] * grad_x.shape()[1];
  const std::int64_t hw = grad_x.shape()[2] * grad_x.shape()[3];
  const std::int64_t howo = grad_out.shape()[2] * grad_out.shape()[3];
  std::atomic<std::int64_t> bad_plane{-1};
  std::atomic<std::int64_t> bad_value{0};
  detail::dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* go = grad_out.data_as<T>();
    const std::int64_t* is = indices.data_as<std::int64_t>();
    T* gx = grad_x.data_as<T>();
    parallel_tasks(planes, hw + howo, [&](std::int64_t p) {
      T* dst = gx + p * hw;
      for (std::int64_t i = 0; i < hw; ++i) dst[i] = T(0);
      const T* src = go + p * howo;
      const std::int64_t* ip = is + p * howo;
      for (std::int64_t q = 0; q < howo; ++q) {
        const std::int64_t idx = ip[q];
        if (idx < 0 || idx >= hw) {
          bad_value.store(idx, std::memory_order_relaxed);
          bad_plane.store(p, std::memory_order_relaxed);
          continue;
        }
        dst[idx] += src[q];
      }
    });
  });
  if (bad_plane.load() >= 0)
    throw std::invalid_argument("[max_pool2d_backward] indices must lie in [0, H * W) = [0, " + std::to_string(hw) +
                                "), got " + std::to_string(bad_value.load()) + " in plane " +
                                std::to_string(bad_plane.load()));
}

void avg_pool2d(const Tensor& x, const Tensor& out, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w, bool count_include_pad) {
  const PoolGeometry g = pool_geometry(x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data_as<T>();
    T* os = out.data_as<T>();
    parallel_tasks(g.n * g.c * g.ho, g.wo * kh * kw, [&](std::int64_t t) {
      const std::int64_t oh = t % g.ho, plane = t / g.ho;
      const T* xp = xs + plane * g.h * g.w;
      for (std::int64_t ow = 0; ow < g.wo; ++ow)
        os[t * g.wo + ow] = pool_window_mean(xp, g, pool_window(g, oh, ow), count_include_pad);
    });
  });
}

void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_x, std::int64_t kh, std::int64_t kw,
                         std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w,
                         bool count_include_pad) {
  const PoolGeometry g = pool_geometry(grad_x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* go = grad_out.data_as<T>();
    T* gx = grad_x.data_as<T>();
    // One task per plane: each output adds grad / divisor over its window, outputs in
    // row-major order, so every input sums its windows in the order of the CUDA gather.
    parallel_tasks(g.n * g.c, g.h * g.w + g.ho * g.wo * kh * kw, [&](std::int64_t p) {
      T* dst = gx + p * g.h * g.w;
      const T* src = go + p * g.ho * g.wo;
      std::fill(dst, dst + g.h * g.w, T(0));
      for (std::int64_t oh = 0; oh < g.ho; ++oh) {
        for (std::int64_t ow = 0; ow < g.wo; ++ow) {
          const PoolWindow win = pool_window(g, oh, ow);
          const T v = src[oh * g.wo + ow] / static_cast<T>(pool_divisor(g, win, count_include_pad));
          for (std::int64_t ih = win.h0; ih < win.h1; ++ih)
            for (std::int64_t iw = win.w0; iw < win.w1; ++iw) dst[ih * g.w + iw] += v;
        }
      }
    });
  });
}

}  // namespace seisoku::cpu
