// CUDA twins of fixed-point quantization: the per-element math of kernels/quant_math.hpp and the
// Philox words of the CPU kernels, so the codes are bit-identical. Grid-stride loops: one thread
// per element (truncate, nearest, dequantize), one per Philox block for stochastic rounding (4
// float32 or 2 float64 elements). A non-finite element lowers a device word with atomicMin (all
// ones when there is none), copied back after the launch: the first such index, as on the CPU.
#include <cstdint>
#include <type_traits>

#include "core/dispatch.hpp"
#include "cuda_util.hpp"
#include "kernels/quant.hpp"
#include "kernels/quant_math.hpp"
#include "seisoku/philox.hpp"

namespace seisoku::gpu {
namespace {

// Stream-ordered scratch word, freed on the stream when it goes out of scope.
class ScratchWord {
 public:
  ScratchWord() {
    SEISOKU_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), sizeof(unsigned long long), stream()));
    SEISOKU_CUDA_CHECK(cudaMemsetAsync(p_, 0xff, sizeof(unsigned long long), stream()));
  }
  ~ScratchWord() { cudaFreeAsync(p_, stream()); }
  ScratchWord(const ScratchWord&) = delete;
  ScratchWord& operator=(const ScratchWord&) = delete;
  unsigned long long* get() const { return p_; }

 private:
  unsigned long long* p_ = nullptr;
};

template <class C, class T, bool NEAREST>
__global__ void quantize_kernel(const T* x, C* codes, std::int64_t n, T scale, unsigned long long* bad) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x) {
    const T v = x[i];
    if (!detail::is_finite_(v)) atomicMin(bad, static_cast<unsigned long long>(i));
    codes[i] = NEAREST ? detail::quantize_nearest<C>(v, scale) : detail::quantize_truncate<C>(v, scale);
  }
}

template <class C>
__global__ void quantize_stochastic_f32(const float* x, C* codes, std::int64_t n, float scale, std::uint64_t seed,
                                        std::uint64_t offset, unsigned long long* bad) {
  const std::int64_t blocks = (n + 3) / 4;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    for (int k = 0; k < 4 && b * 4 + k < n; ++k) {
      const std::int64_t i = b * 4 + k;
      const float v = x[i];
      if (!detail::is_finite_(v)) atomicMin(bad, static_cast<unsigned long long>(i));
      codes[i] = detail::quantize_stochastic<C>(v, scale, philox::to_unit_float(r.v[k]));
    }
  }
}

template <class C>
__global__ void quantize_stochastic_f64(const double* x, C* codes, std::int64_t n, double scale, std::uint64_t seed,
                                        std::uint64_t offset, unsigned long long* bad) {
  const std::int64_t blocks = (n + 1) / 2;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
    for (int k = 0; k < 2 && b * 2 + k < n; ++k) {
      const std::int64_t i = b * 2 + k;
      const double v = x[i];
      if (!detail::is_finite_(v)) atomicMin(bad, static_cast<unsigned long long>(i));
      codes[i] = detail::quantize_stochastic<C>(v, scale, philox::to_unit_double(r.v[2 * k], r.v[2 * k + 1]));
    }
  }
}

template <class T, class C>
__global__ void dequantize_kernel(const C* codes, T* out, std::int64_t n, T inv_scale) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n; i += std::int64_t{gridDim.x} * blockDim.x)
    out[i] = detail::dequantize<T>(codes[i], inv_scale);
}

}  // namespace

std::int64_t quantize_fixed(const Tensor& x, const Tensor& out, int frac_bits, Rounding rounding, std::uint64_t seed,
                            std::uint64_t offset) {
  const std::int64_t n = x.numel();
  if (n == 0) return -1;
  DeviceGuard guard(x.device_index());
  ScratchWord bad;
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    detail::dispatch_code(out.dtype(), [&](auto code_tag) {
      using C = decltype(code_tag);
      const T scale = detail::pow2<T>(frac_bits);
      const T* xs = x.data_as<T>();
      C* codes = out.data_as<C>();
      if (rounding == Rounding::stochastic) {
        if constexpr (std::is_same_v<T, float>)
          quantize_stochastic_f32<C><<<grid_for((n + 3) / 4), kThreads, 0, stream()>>>(xs, codes, n, scale, seed, offset,
                                                                                        bad.get());
        else
          quantize_stochastic_f64<C><<<grid_for((n + 1) / 2), kThreads, 0, stream()>>>(xs, codes, n, scale, seed, offset,
                                                                                        bad.get());
      } else if (rounding == Rounding::nearest) {
        quantize_kernel<C, T, true><<<grid_for(n), kThreads, 0, stream()>>>(xs, codes, n, scale, bad.get());
      } else {
        quantize_kernel<C, T, false><<<grid_for(n), kThreads, 0, stream()>>>(xs, codes, n, scale, bad.get());
      }
    });
  });
  check_launch();
  unsigned long long first = ~0ull;
  SEISOKU_CUDA_CHECK(cudaMemcpyAsync(&first, bad.get(), sizeof(first), cudaMemcpyDeviceToHost, stream()));
  SEISOKU_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return first < static_cast<unsigned long long>(n) ? static_cast<std::int64_t>(first) : -1;
}

void dequantize_fixed(const Tensor& codes, const Tensor& out, int frac_bits) {
  const std::int64_t n = codes.numel();
  if (n == 0) return;
  DeviceGuard guard(codes.device_index());
  detail::dispatch_code(codes.dtype(), [&](auto code_tag) {
    using C = decltype(code_tag);
    detail::dispatch_float(out.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T inv_scale = T(1) / detail::pow2<T>(frac_bits);
      dequantize_kernel<T, C><<<grid_for(n), kThreads, 0, stream()>>>(codes.data_as<C>(), out.data_as<T>(), n, inv_scale);
    });
  });
  check_launch();
}

}  // namespace seisoku::gpu
