// CUDA twins of the elementwise ops (cpp/src/cpu/elementwise.cpp): grid-stride loops, one
// element per iteration, kThreads threads per block, enqueued on the current stream.
#include <cstdint>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/core.hpp"

namespace seisoku::gpu {
namespace {

using detail::convert;

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    out[i] = a[i] + b[i];
}

template <class T>
__global__ void mul_kernel(const T* a, const T* b, T* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    out[i] = a[i] * b[i];
}

template <class T>
__global__ void axpy_kernel(T alpha, const T* x, T* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    y[i] += alpha * x[i];
}

template <class T>
__global__ void axpy_sign_kernel(T alpha, const T* x, T* y, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    y[i] += alpha * detail::sign(x[i]);
}

template <class T>
__global__ void scale_kernel(T alpha, const T* x, T* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    out[i] = alpha * x[i];
}

template <class T>
__global__ void fill_kernel(T value, T* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    out[i] = value;
}

template <class D, class S>
__global__ void copy_kernel(const S* src, D* dst, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    dst[i] = convert<D>(src[i]);
}

}  // namespace

void add(const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device_index());
  detail::dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    add_kernel<<<grid_for(out.numel()), kThreads, 0, stream()>>>(a.data_as<T>(), b.data_as<T>(), out.data_as<T>(), out.numel());
  });
  check_launch();
}

void mul(const Tensor& a, const Tensor& b, const Tensor& out) {
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device_index());
  detail::dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    mul_kernel<<<grid_for(out.numel()), kThreads, 0, stream()>>>(a.data_as<T>(), b.data_as<T>(), out.data_as<T>(), out.numel());
  });
  check_launch();
}

void axpy(double alpha, const Tensor& x, const Tensor& y) {
  if (y.numel() == 0) return;
  DeviceGuard guard(y.device_index());
  detail::dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    axpy_kernel<<<grid_for(y.numel()), kThreads, 0, stream()>>>(static_cast<T>(alpha), x.data_as<T>(), y.data_as<T>(), y.numel());
  });
  check_launch();
}

void axpy_sign(double alpha, const Tensor& x, const Tensor& y) {
  if (y.numel() == 0) return;
  DeviceGuard guard(y.device_index());
  detail::dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    axpy_sign_kernel<<<grid_for(y.numel()), kThreads, 0, stream()>>>(static_cast<T>(alpha), x.data_as<T>(), y.data_as<T>(), y.numel());
  });
  check_launch();
}

void scale(double alpha, const Tensor& x, const Tensor& out) {
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device_index());
  detail::dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    scale_kernel<<<grid_for(out.numel()), kThreads, 0, stream()>>>(static_cast<T>(alpha), x.data_as<T>(), out.data_as<T>(), out.numel());
  });
  check_launch();
}

void fill(const Tensor& out, double value) {
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device_index());
  detail::dispatch_all(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    fill_kernel<<<grid_for(out.numel()), kThreads, 0, stream()>>>(convert<T>(value), out.data_as<T>(), out.numel());
  });
  check_launch();
}

void copy(const Tensor& src, const Tensor& dst) {
  if (dst.numel() == 0) return;
  DeviceGuard guard(dst.device_index());
  if (src.dtype() == dst.dtype()) {
    if (src.data() != dst.data())
      SEISOKU_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), dst.nbytes(), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  detail::dispatch_all(src.dtype(), [&](auto stag) {
    using S = decltype(stag);
    detail::dispatch_all(dst.dtype(), [&](auto dtag) {
      using D = decltype(dtag);
      copy_kernel<<<grid_for(dst.numel()), kThreads, 0, stream()>>>(src.data_as<S>(), dst.data_as<D>(), dst.numel());
    });
  });
  check_launch();
}

}  // namespace seisoku::gpu
