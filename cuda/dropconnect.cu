// CUDA twin of DropConnect's Gaussian inference: one thread per output in a grid-stride loop,
// the per-element math of kernels/dropconnect.hpp, so the result equals the CPU kernel's bits.
#include <cstdint>

#include "core/dispatch.hpp"
#include "cuda_util.hpp"
#include "kernels/dropconnect.hpp"

namespace seisoku::gpu {
namespace {

template <class T>
__global__ void dropconnect_gaussian_kernel(const T* mean, const T* var, T* out, std::int64_t n, Activation act,
                                            T slope, std::int64_t samples, std::uint64_t seed, std::uint64_t offset) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x)
    out[i] = detail::dropconnect_gaussian_value<T>(mean[i], var[i], act, slope, samples, seed, offset, i);
}

}  // namespace

void dropconnect_gaussian(const Tensor& mean, const Tensor& var, const Tensor& out, Activation act, double slope,
                          std::int64_t samples, std::uint64_t seed, std::uint64_t offset) {
  const std::int64_t n = out.numel();
  DeviceGuard guard(out.device_index());
  detail::dispatch_float(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    dropconnect_gaussian_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(
        mean.data_as<T>(), var.data_as<T>(), out.data_as<T>(), n, act, static_cast<T>(slope), samples, seed, offset);
  });
  check_launch();
}

}  // namespace seisoku::gpu
