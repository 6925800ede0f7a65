// CUDA twins of conv2d and conv2d_backward (cpp/src/cpu/conv.cpp, the oracle): im2col into
// a column workspace col[k][s * L + l] for a chunk of samples, then GEMMs through the
// kernel-level gpu::gemm (cuBLAS, 32-bit sizes) on the current stream:
//   forward:  y (O, S*L) = W (O, K) @ col;  out[n, o, :] = y[o, s*L : (s+1)*L] + bias[o]
//   backward: g (O, S*L) = grad_out permuted;  grad_W (+)= g @ col^T;  dcol = W^T @ g;
//             grad_x = col2im(dcol).
//   im2col, epilogue, permute: grid-stride loops, one element per iteration, indexed by the
//     array they write so stores coalesce.
//   col2im: a gather, one thread per input element, summing its (i, j) taps in row-major
//     order from zero.
//   bias gradient: one block per output channel; each thread sums a fixed strided slice in
//     double, then a fixed shared-memory tree combines them: no atomics, reproducible.
// Launch shape: kThreads threads per block, grid_for(n) blocks.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/conv.hpp"
#include "kernels/core.hpp"

namespace seisoku::gpu {
namespace {

// Elements of the column workspace of one chunk (256 MiB in float32).
constexpr std::int64_t kColBudget = std::int64_t{1} << 26;

// Samples per im2col chunk: the column workspace (K x chunk * L) holds at most `budget`
// elements, and never less than one sample. Depends on the shapes only.
inline std::int64_t conv_chunk(const ConvGeometry& g, std::int64_t budget) {
  const std::int64_t per_sample = std::max<std::int64_t>(1, g.k() * g.l());
  return std::clamp<std::int64_t>(budget / per_sample, 1, g.n);
}

// cuBLAS takes 32-bit sizes: the GEMMs' O, K and chunk * L (<= 2^26 / K, or L for one
// sample) must fit. The front-end's checks hold for both devices; this limit is the GPU
// path's own, so it is checked here, once per call.
inline void check_gemm_sizes(const char* op, const ConvGeometry& g) {
  constexpr std::int64_t kMax = std::numeric_limits<int>::max();
  if (g.o > kMax || g.k() > kMax || g.l() > kMax)
    throw std::invalid_argument(std::string("[") + op + "] on CUDA, O = " + std::to_string(g.o) +
                                ", C * kh * kw = " + std::to_string(g.k()) + " and Ho * Wo = " +
                                std::to_string(g.l()) + " must each be at most 2^31 - 1 (cuBLAS sizes)");
}

#define SEISOKU_GRID_STRIDE(i, n) \
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < (n); i += std::int64_t{gridDim.x} * blockDim.x)

template <class T>
__global__ void im2col_kernel(const T* x, T* col, ConvGeometry g, std::int64_t n0, std::int64_t ns) {
  const std::int64_t L = g.l();
  SEISOKU_GRID_STRIDE(idx, g.k() * ns * L) {
    const std::int64_t l = idx % L, t = idx / L;
    const std::int64_t s = t % ns, k = t / ns;
    const std::int64_t oh = l / g.wo, ow = l % g.wo;
    const std::int64_t j = k % g.kw, i = (k / g.kw) % g.kh, c = k / (g.kh * g.kw);
    const std::int64_t ih = oh * g.sh - g.ph + i, iw = ow * g.sw - g.pw + j;
    const bool inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
    col[idx] = inside ? x[(((n0 + s) * g.c + c) * g.h + ih) * g.w + iw] : T(0);
  }
}

template <class T>
__global__ void col2im_kernel(const T* dcol, T* gx, ConvGeometry g, std::int64_t n0, std::int64_t ns) {
  const std::int64_t L = g.l(), ld = ns * L;
  SEISOKU_GRID_STRIDE(idx, ns * g.c * g.h * g.w) {
    const std::int64_t w = idx % g.w, h = (idx / g.w) % g.h, c = (idx / (g.w * g.h)) % g.c;
    const std::int64_t s = idx / (g.w * g.h * g.c);
    T acc = T(0);
    for (std::int64_t i = 0; i < g.kh; ++i) {
      const std::int64_t th = h + g.ph - i;
      if (th < 0 || th % g.sh != 0 || th / g.sh >= g.ho) continue;
      const T* row = dcol + (c * g.kh + i) * g.kw * ld + s * L + (th / g.sh) * g.wo;
      for (std::int64_t j = 0; j < g.kw; ++j) {
        const std::int64_t tw = w + g.pw - j;
        if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.wo) continue;
        acc += row[j * ld + tw / g.sw];
      }
    }
    gx[n0 * g.c * g.h * g.w + idx] = acc;
  }
}

// out[n0 + s, o, l] = y[o, s * L + l] + bias[o]
template <class T>
__global__ void epilogue_kernel(const T* y, const T* bias, T* out, std::int64_t o_count, std::int64_t L,
                                std::int64_t n0, std::int64_t ns) {
  SEISOKU_GRID_STRIDE(idx, ns * o_count * L) {
    const std::int64_t l = idx % L, o = (idx / L) % o_count, s = idx / (L * o_count);
    out[n0 * o_count * L + idx] = y[(o * ns + s) * L + l] + (bias ? bias[o] : T(0));
  }
}

// g[o, s * L + l] = grad_out[n0 + s, o, l]
template <class T>
__global__ void permute_kernel(const T* grad_out, T* g, std::int64_t o_count, std::int64_t L, std::int64_t n0,
                               std::int64_t ns) {
  SEISOKU_GRID_STRIDE(idx, ns * o_count * L) {
    const std::int64_t l = idx % L, s = (idx / L) % ns, o = idx / (L * ns);
    g[idx] = grad_out[((n0 + s) * o_count + o) * L + l];
  }
}

template <class T>
__global__ void bias_grad_kernel(const T* grad_out, T* grad_bias, std::int64_t n, std::int64_t o_count,
                                 std::int64_t L, bool accumulate) {
  __shared__ double part[kThreads];
  for (std::int64_t o = blockIdx.x; o < o_count; o += gridDim.x) {
    double acc = 0.0;
    for (std::int64_t e = threadIdx.x; e < n * L; e += kThreads)
      acc += static_cast<double>(grad_out[((e / L) * o_count + o) * L + e % L]);
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
      if (threadIdx.x < stride) part[threadIdx.x] += part[threadIdx.x + stride];
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const T sum = static_cast<T>(part[0]);
      grad_bias[o] = accumulate ? grad_bias[o] + sum : sum;
    }
    __syncthreads();
  }
}

template <class T>
void forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, const ConvGeometry& g) {
  const std::int64_t L = g.l(), K = g.k(), chunk = conv_chunk(g, kColBudget);
  const int dev = x.device_index();
  const Tensor w2 = weight.reshape({g.o, K});
  Tensor col = Tensor::empty({K, chunk * L}, x.dtype(), Device::cuda, dev);
  Tensor y = Tensor::empty({g.o, chunk * L}, x.dtype(), Device::cuda, dev);
  const T* b = !bias.defined() ? nullptr : bias.data_as<T>();
  for (std::int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const std::int64_t ns = std::min(chunk, g.n - n0);
    const Tensor colv = Tensor::view(col.data(), {K, ns * L}, x.dtype(), Device::cuda, dev);
    const Tensor yv = Tensor::view(y.data(), {g.o, ns * L}, x.dtype(), Device::cuda, dev);
    im2col_kernel<<<grid_for(K * ns * L), kThreads, 0, stream()>>>(x.data_as<T>(), col.data_as<T>(), g, n0, ns);
    check_launch();
    gpu::gemm(w2, colv, yv, false, false, 1.0, 0.0);
    epilogue_kernel<<<grid_for(ns * g.o * L), kThreads, 0, stream()>>>(y.data_as<T>(), b, out.data_as<T>(), g.o, L,
                                                                         n0, ns);
    check_launch();
  }
}

template <class T>
void backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& grad_x,
              const Tensor& grad_weight, const Tensor& grad_bias, const ConvGeometry& g, bool accumulate) {
  const std::int64_t L = g.l(), K = g.k();
  const int dev = x.device_index();
  if (!!grad_bias.defined()) {
    const unsigned blocks = static_cast<unsigned>(std::min<std::int64_t>(g.o, 65535));
    bias_grad_kernel<<<blocks, kThreads, 0, stream()>>>(grad_out.data_as<T>(), grad_bias.data_as<T>(), g.n, g.o, L,
                                                        accumulate);
    check_launch();
  }
  const bool want_w = !!grad_weight.defined(), want_x = !!grad_x.defined();
  if (!want_w && !want_x) return;
  const std::int64_t chunk = conv_chunk(g, kColBudget);
  const Tensor w2 = weight.reshape({g.o, K});
  const Tensor gw2 = want_w ? grad_weight.reshape({g.o, K}) : Tensor();
  Tensor col = Tensor::empty({K, chunk * L}, x.dtype(), Device::cuda, dev);
  Tensor gbuf = Tensor::empty({g.o, chunk * L}, x.dtype(), Device::cuda, dev);
  for (std::int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const std::int64_t ns = std::min(chunk, g.n - n0);
    const Tensor colv = Tensor::view(col.data(), {K, ns * L}, x.dtype(), Device::cuda, dev);
    const Tensor gv = Tensor::view(gbuf.data(), {g.o, ns * L}, x.dtype(), Device::cuda, dev);
    permute_kernel<<<grid_for(ns * g.o * L), kThreads, 0, stream()>>>(grad_out.data_as<T>(), gbuf.data_as<T>(), g.o,
                                                                        L, n0, ns);
    check_launch();
    if (want_w) {
      im2col_kernel<<<grid_for(K * ns * L), kThreads, 0, stream()>>>(x.data_as<T>(), col.data_as<T>(), g, n0, ns);
      check_launch();
      gpu::gemm(gv, colv, gw2, false, true, 1.0, (accumulate || n0 > 0) ? 1.0 : 0.0);
    }
    if (want_x) {
      gpu::gemm(w2, gv, colv, true, false, 1.0, 0.0);
      col2im_kernel<<<grid_for(ns * g.c * g.h * g.w), kThreads, 0, stream()>>>(col.data_as<T>(),
                                                                                grad_x.data_as<T>(), g, n0, ns);
      check_launch();
    }
  }
}

#undef SEISOKU_GRID_STRIDE

}  // namespace

void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, std::int64_t stride_h,
            std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  DeviceGuard guard(x.device_index());
  const ConvGeometry g = conv_geometry(x, weight, stride_h, stride_w, pad_h, pad_w);
  check_gemm_sizes("conv2d", g);
  detail::dispatch_float(x.dtype(), [&](auto tag) { forward<decltype(tag)>(x, weight, bias, out, g); });
}

void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& grad_x,
                     const Tensor& grad_weight, const Tensor& grad_bias, std::int64_t stride_h, std::int64_t stride_w,
                     std::int64_t pad_h, std::int64_t pad_w, bool accumulate) {
  DeviceGuard guard(x.device_index());
  const ConvGeometry g = conv_geometry(x, weight, stride_h, stride_w, pad_h, pad_w);
  check_gemm_sizes("conv2d_backward", g);
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    backward<decltype(tag)>(grad_out, x, weight, grad_x, grad_weight, grad_bias, g, accumulate);
  });
}

}  // namespace seisoku::gpu
