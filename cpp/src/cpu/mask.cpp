// CPU kernels of dropout and Gaussian noise. Words come from the vectorized philox_lanes; a
// Gaussian value i is lane i % 4 of the Box-Muller pair of block i / 4 (as seisoku::normal).
#include <algorithm>
#include <cstdint>

#include "core/dispatch.hpp"
#include "kernels/nn.hpp"
#include "masked.hpp"
#include "kernels/nn_math.hpp"
#include "normal_lanes.hpp"
#include "seisoku/philox.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {
namespace {

#if defined(__AVX2__)
// float32 dropout of one full word group with non-temporal stores: the output bypasses the
// cache, so it is not read before it is written (a third of the memory traffic).
inline void dropout_group_stream(const float* src, float* dst, const std::uint32_t* w, std::int32_t bound,
                                 float keep) {
  const __m256i bias = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i limit = _mm256_set1_epi32(bound);
  const __m256 scale = _mm256_set1_ps(keep);
  for (std::int64_t e = 0; e < kWordGroup; e += 8) {
    const __m256i word = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + e)), bias);
    const __m256 kept = _mm256_castsi256_ps(_mm256_cmpgt_epi32(limit, word));
    _mm256_stream_ps(dst + e, _mm256_mul_ps(_mm256_loadu_ps(src + e), _mm256_and_ps(kept, scale)));
  }
}
#endif

}  // namespace

void dropout(const Tensor& x, const Tensor& out, std::uint32_t keep_threshold, std::uint64_t seed,
             std::uint64_t offset, double scale) {
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data_as<T>();
    T* o = out.data_as<T>();
    const T s = static_cast<T>(scale);
    // Unsigned compare as a signed one on biased words, and a multiply instead of a branch,
    // so the loop vectorizes (AVX2 has no unsigned compare).
    const std::int32_t thr = detail::biased(keep_threshold);
#if defined(__AVX2__)
    // Large float32 outputs that do not alias the input: stream them past the cache.
    const bool stream = std::is_same_v<T, float> && x.numel() >= (std::int64_t{1} << 20) &&
                        static_cast<const void*>(xs) != static_cast<const void*>(o) &&
                        reinterpret_cast<std::uintptr_t>(o) % 32 == 0;
#else
    const bool stream = false;
#endif
    for_word_groups(x.numel(), seed, offset, [=](std::int64_t first, std::int64_t count, const std::uint32_t* w) {
      const T* src = xs + first;  // may equal dst: element e is read before it is written
      T* dst = o + first;
      const T keep = s;
      const std::int32_t bound = thr;
#if defined(__AVX2__)
      if constexpr (std::is_same_v<T, float>) {
        if (stream && count == kWordGroup) {
          dropout_group_stream(src, dst, w, bound, keep);
          return;
        }
      }
#endif
#pragma omp simd
      for (std::int64_t e = 0; e < count; ++e)
        dst[e] = src[e] * (detail::keeps(w[e], bound) ? keep : T(0));
    });
#if defined(__AVX2__)
    if (stream) _mm_sfence();  // streaming stores become visible before the op returns
#endif
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
