// CUDA twins of the random fills (cpp/src/cpu/random.cpp): one thread per Philox block,
// writing 4 float32 (or 2 float64) outputs. Built with --fmad=false: the only fused
// multiply-adds are the explicit ones in philox.hpp, as on the CPU, so the bits match.
#include <cstdint>

#include "cuda_util.hpp"
#include "kernels/core.hpp"
#include "seisoku/philox.hpp"

namespace seisoku::gpu {
namespace {

__global__ void uniform_f32(float* z, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float lo, float width,
                            float top) {
  const std::int64_t blocks = (n + 3) / 4;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    const std::int64_t i = b * 4;
    for (int k = 0; k < 4 && i + k < n; ++k) z[i + k] = fminf(philox::fma_(philox::to_unit_float(r.v[k]), width, lo), top);
  }
}

__global__ void uniform_f64(double* z, std::int64_t n, std::uint64_t seed, std::uint64_t offset, double lo, double width,
                            double top) {
  const std::int64_t blocks = (n + 1) / 2;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    const std::int64_t i = b * 2;
    for (int k = 0; k < 2 && i + k < n; ++k)
      z[i + k] = fmin(philox::fma_(philox::to_unit_double(r.v[2 * k], r.v[2 * k + 1]), width, lo), top);
  }
}

__global__ void normal_f32(float* z, std::int64_t n, std::uint64_t seed, std::uint64_t offset, float mu, float sd) {
  const std::int64_t blocks = (n + 3) / 4;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    float v[4];
    philox::box_muller(philox::to_open_unit_float(r.v[0]), philox::to_unit_float(r.v[1]), &v[0], &v[1]);
    philox::box_muller(philox::to_open_unit_float(r.v[2]), philox::to_unit_float(r.v[3]), &v[2], &v[3]);
    const std::int64_t i = b * 4;
    for (int k = 0; k < 4 && i + k < n; ++k) z[i + k] = philox::fma_(v[k], sd, mu);
  }
}

__global__ void normal_f64(double* z, std::int64_t n, std::uint64_t seed, std::uint64_t offset, double mu, double sd) {
  const std::int64_t blocks = (n + 1) / 2;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    double v[2];
    philox::box_muller(philox::to_open_unit_double(r.v[0], r.v[1]), philox::to_unit_double(r.v[2], r.v[3]), &v[0], &v[1]);
    const std::int64_t i = b * 2;
    for (int k = 0; k < 2 && i + k < n; ++k) z[i + k] = philox::fma_(v[k], sd, mu);
  }
}

template <class T>
__global__ void bernoulli_kernel(T* z, std::int64_t n, std::uint64_t seed, std::uint64_t offset, std::uint64_t threshold) {
  const std::int64_t blocks = (n + 3) / 4;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    const std::int64_t i = b * 4;
    for (int k = 0; k < 4 && i + k < n; ++k) z[i + k] = static_cast<T>(r.v[k] < threshold ? 1 : 0);
  }
}

}  // namespace

void uniform(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double low, double high) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device_index());
  if (out.dtype() == DType::float32) {
    const float lo = static_cast<float>(low), width = static_cast<float>(high) - static_cast<float>(low);
    uniform_f32<<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(out.data_as<float>(), n, seed, offset, lo, width,
                                                                   philox::below(static_cast<float>(high), lo));
  } else {
    uniform_f64<<<grid_for((n + 1) / 2), kThreads, 0, stream()>>>(out.data_as<double>(), n, seed, offset, low, high - low,
                                                                   philox::below(high, low));
  }
  check_launch();
}

void normal(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double mean, double stddev) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device_index());
  if (out.dtype() == DType::float32) {
    normal_f32<<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(out.data_as<float>(), n, seed, offset,
                                                                   static_cast<float>(mean), static_cast<float>(stddev));
  } else {
    normal_f64<<<grid_for((n + 1) / 2), kThreads, 0, stream()>>>(out.data_as<double>(), n, seed, offset, mean, stddev);
  }
  check_launch();
}

void bernoulli(const Tensor& out, std::uint64_t seed, std::uint64_t offset, std::uint64_t threshold) {
  const std::int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(out.device_index());
  const unsigned grid = grid_for((n + 3) / 4);
  switch (out.dtype()) {
    case DType::float32: bernoulli_kernel<<<grid, kThreads, 0, stream()>>>(out.data_as<float>(), n, seed, offset, threshold); break;
    case DType::float64: bernoulli_kernel<<<grid, kThreads, 0, stream()>>>(out.data_as<double>(), n, seed, offset, threshold); break;
    default: bernoulli_kernel<<<grid, kThreads, 0, stream()>>>(out.data_as<std::uint8_t>(), n, seed, offset, threshold); break;
  }
  check_launch();
}

}  // namespace seisoku::gpu
