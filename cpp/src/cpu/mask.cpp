// CPU kernels of dropout and Gaussian noise.
//
// dropout: element i is kept when the 16-bit mask draw of stream element first + i
// (detail::mask_draw: 8 elements per Philox block) is below the keep bound; draws come from the vectorized philox_blocks in groups of
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

// Streaming (non-temporal) stores need aligned addresses. A group of kMaskGroup elements whose
// output starts `lead` elements before an aligned address (NumPy's large arrays start 16 bytes
// past one) streams the aligned vectors from element `lead` on and writes the partial vectors at
// its two ends with ordinary stores that cover those vectors only (a store overlapping a line
// still being streamed would stall on it): of each group's cache lines only the partial ones at
// its ends are read into the cache.
#if defined(__AVX2__)
constexpr std::uintptr_t kStreamAlign = 64;  // whole cache lines: no line both streamed and stored
constexpr std::int64_t kAhead = 2;           // groups of input prefetched ahead
#endif
#if defined(__AVX512F__) && defined(__AVX512BW__)
// float32 dropout of one full group: dst = src * (draw < bound ? keep : 0). Draws are compared
// 32 at a time; values go 16 at a time.
template <bool STREAM>
inline void dropout_group(const float* src, float* dst, const std::uint16_t* draws, std::uint32_t bound, float keep) {
  const __m512i limit = _mm512_set1_epi16(static_cast<short>(bound));
  const __m512 scale = _mm512_set1_ps(keep);
  if constexpr (!STREAM) {
    for (std::int64_t e = 0; e < kMaskGroup; e += 32) {
      const __mmask32 kept = _mm512_cmplt_epu16_mask(_mm512_loadu_si512(draws + e), limit);
      // x * 0 for a dropped element (not a zeroing mask): NaN and Inf give NaN, as on CUDA.
      _mm512_storeu_ps(dst + e, _mm512_mul_ps(_mm512_loadu_ps(src + e),
                                              _mm512_maskz_mov_ps(static_cast<__mmask16>(kept), scale)));
      _mm512_storeu_ps(dst + e + 16, _mm512_mul_ps(_mm512_loadu_ps(src + e + 16),
                                                   _mm512_maskz_mov_ps(static_cast<__mmask16>(kept >> 16), scale)));
    }
  } else {
    std::uint32_t bits[kMaskGroup / 32 + 1];  // bit e % 32 of bits[e / 32]: element e is kept
    for (std::int64_t e = 0; e < kMaskGroup; e += 32)
      bits[e / 32] = static_cast<std::uint32_t>(_mm512_cmplt_epu16_mask(_mm512_loadu_si512(draws + e), limit));
    bits[kMaskGroup / 32] = 0;
    auto kept16 = [&](std::int64_t e) {  // bits of elements e .. e + 15, 0 <= e <= kMaskGroup - 16
      const std::uint64_t pair = bits[e / 32] | (std::uint64_t{bits[e / 32 + 1]} << 32);
      return static_cast<__mmask16>(pair >> (e % 32));
    };
    const auto lead = static_cast<int>(((kStreamAlign - reinterpret_cast<std::uintptr_t>(dst) % kStreamAlign) %
                                        kStreamAlign) / sizeof(float));
    std::int64_t e = lead;
    for (; e + 16 <= kMaskGroup; e += 16)
      _mm512_stream_ps(dst + e, _mm512_mul_ps(_mm512_loadu_ps(src + e), _mm512_maskz_mov_ps(kept16(e), scale)));
    if (lead > 0) {
      // The vector ending at element lead (its lanes 16 - lead .. 15) and the one starting at e
      // (its lanes 0 .. 15 - lead); masked loads do not touch the elements outside the group.
      const int rest = 16 - lead;
      const auto head = static_cast<__mmask16>(((1u << lead) - 1u) << rest);
      const auto head_kept = static_cast<__mmask16>((kept16(0) << rest) & head);
      _mm512_mask_storeu_ps(dst + lead - 16, head,
                            _mm512_mul_ps(_mm512_maskz_loadu_ps(head, src + lead - 16),
                                          _mm512_maskz_mov_ps(head_kept, scale)));
      const auto tail = static_cast<__mmask16>((1u << rest) - 1u);
      const auto tail_kept = static_cast<__mmask16>((kept16(kMaskGroup - 16) >> lead) & tail);
      _mm512_mask_storeu_ps(dst + e, tail,
                            _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, src + e), _mm512_maskz_mov_ps(tail_kept, scale)));
    }
  }
}
#elif defined(__AVX2__)
template <bool STREAM>
inline void dropout_group(const float* src, float* dst, const std::uint16_t* draws, std::uint32_t bound, float keep) {
  const __m256i limit = _mm256_set1_epi32(static_cast<int>(bound));
  const __m256 scale = _mm256_set1_ps(keep);
  auto value = [&](std::int64_t e) {  // elements e .. e + 7
    const __m256i draw = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(draws + e)));
    const __m256 kept = _mm256_castsi256_ps(_mm256_cmpgt_epi32(limit, draw));
    return _mm256_mul_ps(_mm256_loadu_ps(src + e), _mm256_and_ps(kept, scale));
  };
  if constexpr (!STREAM) {
    for (std::int64_t e = 0; e < kMaskGroup; e += 8) _mm256_storeu_ps(dst + e, value(e));
  } else {
    const auto lead = static_cast<int>(((kStreamAlign - reinterpret_cast<std::uintptr_t>(dst) % kStreamAlign) %
                                        kStreamAlign) / sizeof(float));
    std::int64_t e = lead;
    for (; e + 8 <= kMaskGroup; e += 8) _mm256_stream_ps(dst + e, value(e));
    // The partial vectors at both ends, element by element (AVX2 masked stores are slow).
    for (std::int64_t k = 0; k < lead; ++k) dst[k] = src[k] * (draws[k] < bound ? keep : 0.0f);
    for (; e < kMaskGroup; ++e) dst[e] = src[e] * (draws[e] < bound ? keep : 0.0f);
  }
}
#endif

}  // namespace

void dropout(const Tensor& x, const Tensor& out, std::uint32_t keep_bound, std::uint64_t seed, std::uint64_t offset,
             double scale, std::uint64_t first) {
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
                        reinterpret_cast<std::uintptr_t>(o) % alignof(float) == 0;
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
#if defined(__AVX2__)
        // The input two groups ahead is asked for before the Philox rounds of this one, so that
        // its lines arrive while the rounds run (at full threads the loop nears the memory bound).
        if (stream && base + kAhead * kMaskGroup < i1) {
          const char* ahead = reinterpret_cast<const char*>(xs + base + kAhead * kMaskGroup);
          for (std::size_t b = 0; b < kMaskGroup * sizeof(T); b += 64) _mm_prefetch(ahead + b, _MM_HINT_T0);
        }
#endif
        mask_draws_at(seed, offset, first + static_cast<std::uint64_t>(base), draws);
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
