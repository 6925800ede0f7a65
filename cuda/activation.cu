// CUDA twins of the activations (grid-stride, one element per iteration) and softmax (one
// block of kThreads per row; max and float64 sum by block reduction in a fixed order).
#include <cstdint>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"

namespace seisoku::gpu {
namespace {

template <class T>
__global__ void activation_kernel(const T* x, T* out, std::int64_t n, Activation act, T slope) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    out[i] = detail::act_forward(x[i], act, slope);
}

template <class T>
__global__ void activation_backward_kernel(const T* g, const T* y, T* gi, std::int64_t n, Activation act, T slope) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    gi[i] = g[i] * detail::act_derivative(y[i], act, slope);
}

// Reduces v over the block with op; every thread gets the result.
template <class Op>
__device__ double block_all_reduce(double v, Op op) {
  __shared__ double part[kThreads / 32];
  __shared__ double result;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double r = part[0];
    for (int w = 1; w < kThreads / 32; ++w) r = op(r, part[w]);
    result = r;
  }
  __syncthreads();
  const double r = result;
  __syncthreads();
  return r;
}

struct MaxOp {
  __device__ double operator()(double a, double b) const { return a > b ? a : b; }
};
struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};

template <class T>
__global__ void softmax_kernel(const T* x, T* out, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    T* orow = out + r * cols;
    double m = -INFINITY;
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads) m = MaxOp()(m, static_cast<double>(xr[j]));
    const T mx = static_cast<T>(block_all_reduce(m, MaxOp()));
    double s = 0.0;
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads) {
      const T e = detail::exp_(xr[j] - mx);
      orow[j] = e;
      s += static_cast<double>(e);
    }
    const T inv = static_cast<T>(1.0 / block_all_reduce(s, SumOp()));
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads) orow[j] *= inv;
  }
}

template <class T>
__global__ void softmax_backward_kernel(const T* g, const T* y, T* gi, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const std::int64_t base = r * cols;
    double d = 0.0;
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads)
      d += static_cast<double>(g[base + j]) * static_cast<double>(y[base + j]);
    const T dot = static_cast<T>(block_all_reduce(d, SumOp()));
    for (std::int64_t j = threadIdx.x; j < cols; j += kThreads) gi[base + j] = y[base + j] * (g[base + j] - dot);
  }
}

void row_shape(const Tensor& x, std::int64_t* rows, std::int64_t* cols) {
  *cols = x.dim() == 0 ? 1 : x.shape().back();
  *rows = *cols == 0 ? 0 : x.numel() / *cols;
}

}  // namespace

void activation(const Tensor& x, const Tensor& out, Activation act, double slope) {
  if (x.numel() == 0) return;
  DeviceGuard guard(x.device_index());
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    activation_kernel<<<grid_for(x.numel()), kThreads, 0, stream()>>>(x.data_as<T>(), out.data_as<T>(), x.numel(), act,
                                                                      static_cast<T>(slope));
  });
  check_launch();
}

void activation_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in, Activation act, double slope) {
  if (y.numel() == 0) return;
  DeviceGuard guard(y.device_index());
  detail::dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    activation_backward_kernel<<<grid_for(y.numel()), kThreads, 0, stream()>>>(
        grad_out.data_as<T>(), y.data_as<T>(), grad_in.data_as<T>(), y.numel(), act, static_cast<T>(slope));
  });
  check_launch();
}

void softmax(const Tensor& x, const Tensor& out) {
  std::int64_t rows, cols;
  row_shape(x, &rows, &cols);
  if (rows == 0) return;
  DeviceGuard guard(x.device_index());
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<<<static_cast<unsigned>(std::min<std::int64_t>(rows, 65536)), kThreads, 0, stream()>>>(
        x.data_as<T>(), out.data_as<T>(), rows, cols);
  });
  check_launch();
}

void softmax_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in) {
  std::int64_t rows, cols;
  row_shape(y, &rows, &cols);
  if (rows == 0) return;
  DeviceGuard guard(y.device_index());
  detail::dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<<<static_cast<unsigned>(std::min<std::int64_t>(rows, 65536)), kThreads, 0, stream()>>>(
        grad_out.data_as<T>(), y.data_as<T>(), grad_in.data_as<T>(), rows, cols);
  });
  check_launch();
}

}  // namespace seisoku::gpu
