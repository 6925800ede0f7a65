// CUDA twins of dropout and Gaussian noise, the same draws and arithmetic as the CPU kernels, so
// the outputs are bit-identical. dropout: one thread per Philox block of 8 elements (16-bit mask
// draws, detail::mask_draw); gaussian_noise: one thread per block of 4 float32 (2 float64) values.
#include <cstdint>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "seisoku/philox.hpp"

namespace seisoku::gpu {
namespace {

// Element i is stream element first + i: thread b takes stream block first / 8 + b, whose
// elements are x's i = 8 b + k - first % 8 (those in [0, n)).
template <class T>
__global__ void dropout_kernel(const T* x, T* out, std::int64_t n, std::uint32_t bound, std::uint64_t seed,
                               std::uint64_t offset, T scale, std::uint64_t first) {
  const std::int64_t shift = static_cast<std::int64_t>(first % 8);
  const std::int64_t blocks = (n + shift + 7) / 8;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, first / 8 + static_cast<std::uint64_t>(b));
    for (int k = 0; k < 8; ++k) {
      const std::int64_t i = b * 8 + k - shift;
      if (i < 0 || i >= n) continue;
      out[i] = x[i] * (detail::mask_draw(r, k) < bound ? scale : T(0));  // as the CPU kernel: a dropped NaN stays NaN
    }
  }
}

__global__ void noise_f32(const float* x, float* out, std::int64_t n, float sd, std::uint64_t seed, std::uint64_t offset) {
  const std::int64_t blocks = (n + 3) / 4;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    float v[4];
    philox::box_muller(philox::to_open_unit_float(r.v[0]), philox::to_unit_float(r.v[1]), &v[0], &v[1]);
    philox::box_muller(philox::to_open_unit_float(r.v[2]), philox::to_unit_float(r.v[3]), &v[2], &v[3]);
    for (int k = 0; k < 4 && b * 4 + k < n; ++k) out[b * 4 + k] = philox::fma_(v[k], sd, x[b * 4 + k]);
  }
}

__global__ void noise_f64(const double* x, double* out, std::int64_t n, double sd, std::uint64_t seed, std::uint64_t offset) {
  const std::int64_t blocks = (n + 1) / 2;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    double v[2];
    philox::box_muller(philox::to_open_unit_double(r.v[0], r.v[1]), philox::to_unit_double(r.v[2], r.v[3]), &v[0], &v[1]);
    for (int k = 0; k < 2 && b * 2 + k < n; ++k) out[b * 2 + k] = philox::fma_(v[k], sd, x[b * 2 + k]);
  }
}

}  // namespace

void dropout(const Tensor& x, const Tensor& out, std::uint32_t keep_bound, std::uint64_t seed, std::uint64_t offset,
             double scale, std::uint64_t first) {
  const std::int64_t n = x.numel();
  if (n == 0) return;
  DeviceGuard guard(x.device_index());
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<<<grid_for((n + 7) / 8 + 1), kThreads, 0, stream()>>>(x.data_as<T>(), out.data_as<T>(), n, keep_bound,
                                                                           seed, offset, static_cast<T>(scale), first);
  });
  check_launch();
}

void gaussian_noise(const Tensor& x, const Tensor& out, double stddev, std::uint64_t seed, std::uint64_t offset) {
  const std::int64_t n = x.numel();
  if (n == 0) return;
  DeviceGuard guard(x.device_index());
  if (x.dtype() == DType::float32) {
    noise_f32<<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(x.data_as<float>(), out.data_as<float>(), n,
                                                                 static_cast<float>(stddev), seed, offset);
  } else {
    noise_f64<<<grid_for((n + 1) / 2), kThreads, 0, stream()>>>(x.data_as<double>(), out.data_as<double>(), n, stddev,
                                                                 seed, offset);
  }
  check_launch();
}

}  // namespace seisoku::gpu
