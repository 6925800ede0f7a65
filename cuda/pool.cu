// CUDA twins of max_pool2d, avg_pool2d and their backward ops (cpp/src/cpu/pool.cpp).
//   forward, avg backward: grid-stride loops, one output (input, for the backward gather)
//     element per iteration, through the window helpers of kernels/pool.hpp that the CPU
//     shares, so both devices give the same bits.
//   max backward: one warp per (n, c) plane. The warp zeroes the plane, then walks grad_out
//     in row-major chunks of 32; lanes aiming at the same input pixel find each other with
//     __match_any_sync and the lowest of them adds their values in lane order. Each input
//     pixel thus sums its contributions in row-major output order, as on the CPU, without
//     atomics. Indices outside [0, H * W) are skipped (the CPU twin raises instead).
// Launch shape: kThreads threads per block, grid_for(n) blocks (max backward: one warp per
// plane, kThreads / 32 planes per block, grid-stride over planes).
#include <cstdint>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/pool.hpp"

namespace seisoku::gpu {
namespace {

#define SEISOKU_GRID_STRIDE(i, n) \
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < (n); i += std::int64_t{gridDim.x} * blockDim.x)

constexpr int kWarps = kThreads / 32;

template <class T>
__global__ void max_pool_kernel(const T* x, T* out, std::int64_t* indices, PoolGeometry g) {
  SEISOKU_GRID_STRIDE(idx, g.n * g.c * g.ho * g.wo) {
    const std::int64_t ow = idx % g.wo, oh = (idx / g.wo) % g.ho, plane = idx / (g.wo * g.ho);
    std::int64_t best = 0;
    out[idx] = pool_window_max(x + plane * g.h * g.w, g, pool_window(g, oh, ow), &best);
    indices[idx] = best;
  }
}

template <class T>
__global__ void max_pool_backward_kernel(const T* grad_out, const std::int64_t* indices, T* grad_x,
                                         std::int64_t planes, std::int64_t hw, std::int64_t howo) {
  __shared__ T values[kWarps][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::int64_t first = blockIdx.x * std::int64_t{kWarps} + warp;
  for (std::int64_t p = first; p < planes; p += std::int64_t{gridDim.x} * kWarps) {  // warp-uniform
    T* gx = grad_x + p * hw;
    for (std::int64_t i = lane; i < hw; i += 32) gx[i] = T(0);
    __syncwarp();
    const T* go = grad_out + p * howo;
    const std::int64_t* ip = indices + p * howo;
    for (std::int64_t base = 0; base < howo; base += 32) {
      const std::int64_t q = base + lane;
      long long target = -1;
      if (q < howo) {
        const std::int64_t t = ip[q];
        if (t >= 0 && t < hw) target = t;
      }
      values[warp][lane] = q < howo ? go[q] : T(0);
      const unsigned peers = __match_any_sync(0xffffffffu, target);
      __syncwarp();
      if (target >= 0 && lane == __ffs(peers) - 1) {
        T acc = gx[target];
        for (unsigned m = peers; m != 0; m &= m - 1) acc += values[warp][__ffs(m) - 1];
        gx[target] = acc;
      }
      __syncwarp();
    }
  }
}

template <class T>
__global__ void avg_pool_kernel(const T* x, T* out, PoolGeometry g, bool count_include_pad) {
  SEISOKU_GRID_STRIDE(idx, g.n * g.c * g.ho * g.wo) {
    const std::int64_t ow = idx % g.wo, oh = (idx / g.wo) % g.ho, plane = idx / (g.wo * g.ho);
    out[idx] = pool_window_mean(x + plane * g.h * g.w, g, pool_window(g, oh, ow), count_include_pad);
  }
}

template <class T>
__global__ void avg_pool_backward_kernel(const T* grad_out, T* grad_x, PoolGeometry g, bool count_include_pad) {
  SEISOKU_GRID_STRIDE(idx, g.n * g.c * g.h * g.w) {
    const std::int64_t iw = idx % g.w, ih = (idx / g.w) % g.h, plane = idx / (g.w * g.h);
    grad_x[idx] = avg_pool_gather(grad_out + plane * g.ho * g.wo, g, ih, iw, count_include_pad);
  }
}

#undef SEISOKU_GRID_STRIDE

}  // namespace

void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices, std::int64_t kh, std::int64_t kw,
                std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  DeviceGuard guard(x.device_index());
  const PoolGeometry g = pool_geometry(x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    max_pool_kernel<<<grid_for(out.numel()), kThreads, 0, stream()>>>(x.data_as<T>(), out.data_as<T>(),
                                                                        indices.data_as<std::int64_t>(), g);
  });
  check_launch();
}

void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Tensor& grad_x) {
  DeviceGuard guard(grad_x.device_index());
  const std::int64_t planes = grad_x.shape()[0] * grad_x.shape()[1];
  const std::int64_t hw = grad_x.shape()[2] * grad_x.shape()[3];
  const std::int64_t howo = grad_out.shape()[2] * grad_out.shape()[3];
  const unsigned blocks = static_cast<unsigned>(std::clamp<std::int64_t>((planes + kWarps - 1) / kWarps, 1, 65536));
  detail::dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    max_pool_backward_kernel<<<blocks, kThreads, 0, stream()>>>(grad_out.data_as<T>(),
                                                                indices.data_as<std::int64_t>(),
                                                                grad_x.data_as<T>(), planes, hw, howo);
  });
  check_launch();
}

void avg_pool2d(const Tensor& x, const Tensor& out, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w, bool count_include_pad) {
  DeviceGuard guard(x.device_index());
  const PoolGeometry g = pool_geometry(x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_pool_kernel<<<grid_for(out.numel()), kThreads, 0, stream()>>>(x.data_as<T>(), out.data_as<T>(), g,
                                                                        count_include_pad);
  });
  check_launch();
}

void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_x, std::int64_t kh, std::int64_t kw,
                         std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w,
                         bool count_include_pad) {
  DeviceGuard guard(grad_x.device_index());
  const PoolGeometry g = pool_geometry(grad_x.shape(), kh, kw, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(grad_x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_pool_backward_kernel<<<grid_for(grad_x.numel()), kThreads, 0, stream()>>>(grad_out.data_as<T>(),
                                                                                   grad_x.data_as<T>(), g,
                                                                                   count_include_pad);
  });
  check_launch();
}

}  // namespace seisoku::gpu
