// CUDA twins of the reductions (cpp/src/cpu/reduce.cpp). Two passes: a fixed grid of up to
// 1024 blocks each reduces a strided slice into a float64 partial, then one block combines
// the partials in index order. The grid depends only on n, so results are reproducible run
// to run (they may differ from the CPU in the last bits because the order differs).
// row_norm: one block per row. column_sum: one thread per column, rows added in order.
#include <cmath>
#include <cstdint>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/core.hpp"

namespace seisoku::gpu {
namespace {

enum class Kind { sum, abs_sum, sq_sum, nonzero, max, abs_max };

template <Kind K>
__device__ __forceinline__ double identity() {
  return K == Kind::max ? -INFINITY : 0.0;
}

template <Kind K>
__device__ __forceinline__ double combine(double a, double b) {
  if constexpr (K == Kind::max || K == Kind::abs_max) {
    if (a != a || b != b) return NAN;
    return a > b ? a : b;
  } else {
    return a + b;
  }
}

template <Kind K, class T>
__device__ __forceinline__ double term(T v) {
  const double x = static_cast<double>(v);
  if constexpr (K == Kind::sum || K == Kind::max) return x;
  else if constexpr (K == Kind::abs_sum || K == Kind::abs_max) return fabs(x);
  else if constexpr (K == Kind::sq_sum) return x * x;
  else return x != 0.0 ? 1.0 : 0.0;
}

// Block-wide reduction of one value per thread; the result is valid in thread 0.
template <Kind K>
__device__ double block_combine(double v) {
  __shared__ double warp_part[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = combine<K>(v, __shfl_down_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? warp_part[lane] : identity<K>();
    for (int o = 16; o > 0; o >>= 1) v = combine<K>(v, __shfl_down_sync(0xffffffffu, v, o));
  }
  return v;
}

template <Kind K, class T>
__global__ void partial_kernel(const T* x, std::int64_t n, double* parts) {
  double acc = identity<K>();
  for (std::int64_t i = blockIdx.x * std::int64_t{kThreads} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * kThreads)
    acc = combine<K>(acc, term<K>(x[i]));
  acc = block_combine<K>(acc);
  if (threadIdx.x == 0) parts[blockIdx.x] = acc;
}

template <Kind K, class T>
__global__ void finish_kernel(const double* parts, int count, double divide_by, T* out) {
  double acc = identity<K>();
  for (int i = threadIdx.x; i < count; i += kThreads) acc = combine<K>(acc, parts[i]);
  acc = block_combine<K>(acc);
  if (threadIdx.x == 0) *out = static_cast<T>((K == Kind::sq_sum ? sqrt(acc) : acc) / divide_by);
}

template <Kind K, class T>
__global__ void row_kernel(const T* x, std::int64_t rows, std::int64_t cols, T* out) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * cols;
    double acc = identity<K>();
    for (std::int64_t i = threadIdx.x; i < cols; i += kThreads) acc = combine<K>(acc, term<K>(row[i]));
    acc = block_combine<K>(acc);
    if (threadIdx.x == 0) out[r] = static_cast<T>(K == Kind::sq_sum ? sqrt(acc) : acc);
    __syncthreads();
  }
}

template <class T>
__global__ void column_sum_kernel(const T* x, std::int64_t rows, std::int64_t cols, T* out, bool accumulate) {
  for (std::int64_t j = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; j < cols; j += std::int64_t{gridDim.x} * blockDim.x) {
    double acc = accumulate ? static_cast<double>(out[j]) : 0.0;
    for (std::int64_t r = 0; r < rows; ++r) acc += static_cast<double>(x[r * cols + j]);
    out[j] = static_cast<T>(acc);
  }
}

template <Kind K>
void reduce_all(const Tensor& x, const Tensor& out, double divide_by = 1.0) {
  DeviceGuard guard(x.device_index());
  const std::int64_t n = x.numel();
  const int blocks = static_cast<int>(std::clamp<std::int64_t>((n + kThreads * 8 - 1) / (kThreads * 8), 1, 1024));
  double* parts = nullptr;
  SEISOKU_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&parts), sizeof(double) * blocks, stream()));
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    partial_kernel<K, T><<<blocks, kThreads, 0, stream()>>>(x.data_as<T>(), n, parts);
    finish_kernel<K, T><<<1, kThreads, 0, stream()>>>(parts, blocks, divide_by, out.data_as<T>());
  });
  check_launch();
  SEISOKU_CUDA_CHECK(cudaFreeAsync(parts, stream()));
}

template <class F>
void with_kind(double ord, F&& f) {
  if (ord == 0) f(std::integral_constant<Kind, Kind::nonzero>{});
  else if (ord == 1) f(std::integral_constant<Kind, Kind::abs_sum>{});
  else if (ord == 2) f(std::integral_constant<Kind, Kind::sq_sum>{});
  else f(std::integral_constant<Kind, Kind::abs_max>{});
}

}  // namespace

void sum(const Tensor& x, const Tensor& out) { reduce_all<Kind::sum>(x, out); }
void mean(const Tensor& x, const Tensor& out) { reduce_all<Kind::sum>(x, out, static_cast<double>(x.numel())); }
void max(const Tensor& x, const Tensor& out) { reduce_all<Kind::max>(x, out); }

void norm(const Tensor& x, double ord, const Tensor& out) {
  with_kind(ord, [&](auto kind) { reduce_all<decltype(kind)::value>(x, out); });
}

void row_norm(const Tensor& x, double ord, const Tensor& out) {
  const std::int64_t rows = x.shape()[0];
  if (rows == 0) return;
  const std::int64_t cols = x.numel() / rows;
  DeviceGuard guard(x.device_index());
  with_kind(ord, [&](auto kind) {
    constexpr Kind K = decltype(kind)::value;
    detail::dispatch_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const unsigned grid = static_cast<unsigned>(std::min<std::int64_t>(rows, 65536));
      row_kernel<K, T><<<grid, kThreads, 0, stream()>>>(x.data_as<T>(), rows, cols, out.data_as<T>());
    });
  });
  check_launch();
}

void column_sum(const Tensor& x, const Tensor& out, bool accumulate) {
  const std::int64_t rows = x.shape()[0], cols = x.shape()[1];
  if (cols == 0) return;
  DeviceGuard guard(x.device_index());
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    column_sum_kernel<<<grid_for(cols), kThreads, 0, stream()>>>(x.data_as<T>(), rows, cols, out.data_as<T>(), accumulate);
  });
  check_launch();
}

}  // namespace seisoku::gpu
