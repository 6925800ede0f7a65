// CPU kernels of dropout and Gaussian noise.
//
// dropout: element i is kept when its 16-bit mask draw (detail::mask_draw: 8 elements per Philox
// block) is below the keep bound; draws come from the vectorized philox_blocks in groups of
// kMaskGroup elements per thread range. Large float32 outputs that do not alias the input are
// written with non-temporal stores (the output is not read into the cache before it is written).
// gaussian_noise: value i is lane i % 4 of the Box-Muller pairs of block i / 4 (as
// seisoku::normal), from normal_lanes.hpp.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/dispatch.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "masked.hpp"
#include "normal_lanes.hpp"
#include "seisoku/philox.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {
namespace {

#if defined(__AVX512F__) && defined(__AVX512BW__)
constexpr std::uintptr_t kStreamAlign = 64;
// float32 dropout of one full group: dst = src * (draw < bound ? keep : 0), 32 elements per
// compare of 16-bit draws.
template <bool STREAM>
inline void dropout_group(const float* src, float* dst, const std::uint16_t* draws, std::uint32_t bound, float keep) {
  const __m512i limit = _mm512_set1_epi16(static_cast<short>(bound));
  const __m512 scale = _mm512_set1_ps(keep);
  for (std::int64_t e = 0; e < kMaskGroup; e += 32) {
    const __mmask32 kept = _mm512_cmplt_epu16_mask(_mm512_loadu_si512(draws + e), limit);
    // x * 0 for a dropped element (not a zeroing mask): NaN and Inf give NaN, as on CUDA.
    const __m512 a = _mm512_mul_ps(_mm512_loadu_ps(src + e), _mm512_maskz_mov_ps(static_cast<__mmask16>(kept), scale));
    const __m512 b =
        _mm512_mul_ps(_mm512_loadu_ps(src + e + 16), _mm512_maskz_mov_ps(static_cast<__mmask16>(kept >> 16), scale));
    if constexpr (STREAM) {
      _mm512_stream_ps(dst + e, a);
      _mm512_stream_ps(dst + e + 16, b);
    } else {
      _mm512_storeu_ps(dst + e, a);
      _mm512_storeu_ps(dst + e + 16, b);
    }
  }
}
#elif defined(__AVX2__)
constexpr std::uintptr_t kStreamAlign = 32;
template <bool STREAM>
inline void dropout_group(const float* src, float* dst, const std::uint16_t* draws, std::uint32_t bound, float keep) {
  const __m256i limit = _mm256_set1_epi32(static_cast<int>(bound));
  const __m256 scale = _mm256_set1_ps(keep);
  for (std::int64_t e = 0; e < kMaskGroup; e += 8) {
    const __m256i draw = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(draws + e)));
    const __m256 kept = _mm256_castsi256_ps(_mm256_cmpgt_epi32(limit, draw));
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(src + e), _mm256_and_ps(kept, scale));
    if constexpr (STREAM) _mm256_stream_ps(dst + e, v);
    else _mm256_storeu_ps(dst + e, v);
  }
}
#endif

}  // namespace

void dropout(const Tensor& x, const Tensor& out, std::uint32_t keep_bound, std::uint64_t seed, std::uint64_t offset,
             double scale) {
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data_as<T>();
    T* o = out.data_as<T>();
    const T s = static_cast<T>(scale);
    const std::int32_t bound = static_cast<std::int32_t>(keep_bound);  // <= 65535: a signed compare
#if defined(__AVX2__)
    // Large float32 outputs that do not alias the input: stream them past the cache.
    const bool stream = std::is_same_v<T, float> && x.numel() >= (std::int64_t{1} << 20) &&
                        static_cast<const void*>(xs) != static_cast<const void*>(o) &&
                        reinterpret_cast<std::uintptr_t>(o) % kStreamAlign == 0;
#else
    const bool stream = false;
#endif
    auto group = [=](std::int64_t first, std::int64_t count, const std::uint16_t* h) {
      const T* src = xs + first;  // may equal dst: element e is read before it is written
      T* dst = o + first;
      const T keep = s;
      const std::int32_t b = bound;
#if defined(__AVX2__)
      if constexpr (std::is_same_v<T, float>) {
        if (count == kMaskGroup) {
          if (stream) dropout_group<true>(src, dst, h, static_cast<std::uint32_t>(b), keep);
          else dropout_group<false>(src, dst, h, static_cast<std::uint32_t>(b), keep);
          return;
        }
      }
#endif
#pragma omp simd
      for (std::int64_t e = 0; e < count; ++e) dst[e] = src[e] * (static_cast<std::int32_t>(h[e]) < b ? keep : T(0));
    };
    parallel_for(x.numel(), [&](std::int64_t i0, std::int64_t i1) {
      alignas(64) std::uint16_t draws[kMaskGroup];
      for (std::int64_t base = i0; base < i1; base += kMaskGroup) {
        mask_draws(seed, offset, static_cast<std::uint64_t>(base / 8), draws);
        group(base, std::min(kMaskGroup, i1 - base), draws);
      }
#if defined(__AVX2__)
      if (stream) _mm_sfence();  // this thread's streaming stores are visible before it joins
#endif
    });
  });
}

void gaussian_noise(const Tensor& x, const Tensor& out, double stddev, std::uint64_t seed, std::uint64_t offset) {
  if (x.dtype() == DType::float32) {
    const float* xs = x.data_as<float>();
    float* o = out.data_as<float>();
    const float sd = static_cast<float>(stddev);
    for_normal_groups(x.numel(), seed, offset, [=](std::int64_t first, std::int64_t count, const float* v) {
      const float* src = xs + first;  // may equal dst: element k is read before it is written
      float* dst = o + first;
      for (std::int64_t k = 0; k < count; ++k) dst[k] = philox::fma_(v[k], sd, src[k]);
    });
  } else {
    const double* xs = x.data_as<double>();
    double* o = out.data_as<double>();
    const std::int64_t n = x.numel();
    parallel_for((n + 1) / 2, [=](std::int64_t b0, std::int64_t b1) {
      for (std::int64_t b = b0; b < b1; ++b) {
        const philox::Block r = philox::draw(seed, offset, static_cast<std::uint64_t>(b));
        double v[2];
        philox::box_muller(philox::to_open_unit_double(r.v[0], r.v[1]), philox::to_unit_double(r.v[2], r.v[3]), &v[0],
                           &v[1]);
        for (std::int64_t k = 0; k < 2 && b * 2 + k < n; ++k) o[b * 2 + k] = philox::fma_(v[k], stddev, xs[b * 2 + k]);
      }
    }, kParallelGrain / 16);
  }
}

}  // namespace seisoku::cpu
