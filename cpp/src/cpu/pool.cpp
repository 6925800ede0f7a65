// CPU kernels of max_pool2d, avg_pool2d and their backward ops. Forward: one task per output
// row (n, c, oh), each window scanned in row-major order by the helpers of kernels_pool.hpp
// that the CUDA twin shares. avg backward: a gather, one task per input row, each pixel
// summing its windows in row-major output order. max backward: one task per (n, c) plane,
// which zeroes its grad_x plane and adds grad_out into it in row-major output order, so each
// input pixel sums its contributions in a fixed order (the CUDA twin uses the same order).
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dispatch.hpp"
#include "kernels_pool.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {

void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices, std::int64_t kh, std::int64_t kw,
                std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  const PoolGeometry g = pool_geometry(x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data_as<T>();
    T* os = out.data_as<T>();
    std::int64_t* is = indices.data_as<std::int64_t>();
    parallel_tasks(g.n * g.c * g.ho, g.wo * kh * kw, [&](std::int64_t t) {
      const std::int64_t oh = t % g.ho, plane = t / g.ho;
      const T* xp = xs + plane * g.h * g.w;
      for (std::int64_t ow = 0; ow < g.wo; ++ow) {
        std::int64_t idx = 0;
        os[t * g.wo + ow] = pool_window_max(xp, g, pool_window(g, oh, ow), &idx);
        is[t * g.wo + ow] = idx;
      }
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
    parallel_tasks(g.n * g.c * g.h, g.w * kh * kw, [&](std::int64_t t) {
      const std::int64_t ih = t % g.h, plane = t / g.h;
      const T* gp = go + plane * g.ho * g.wo;
      for (std::int64_t iw = 0; iw < g.w; ++iw) gx[t * g.w + iw] = avg_pool_gather(gp, g, ih, iw, count_include_pad);
    });
  });
}

}  // namespace seisoku::cpu
