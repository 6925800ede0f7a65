#pragma once
// What the CPU augmentation kernels share across their files: augment.cpp runs a call's
// stages sample by sample (and the fill and noise stages itself), augment_geometric.cpp the
// flips and crops and the axis-aligned resamplings, augment_resample.cpp the resampling
// through a padded source (rotations, displacements), augment_smooth.cpp the Gaussian
// smoothing and the elastic fields.
#include <cmath>
#include <cstdint>

#include "kernels/augment.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace seisoku::cpu::augment_impl {

// One geometric stage of one sample (augment_geometric.cpp; float and uint8).
template <class T>
void geometric(const T* src, T* dst, const StagePlan& st, const SampleStage& ss);

// A general affine map with K x K taps (augment_resample.cpp; K = 1, 2, 4).
template <int K, class T>
void geometric_affine(const T* src, T* dst, const StagePlan& st, const SampleStage& ss);

// dst(y, x) = src read at (x + dx, y + dy) (augment_resample.cpp).
template <class T>
void displace_image(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img, Interpolation interpolation,
                    Border border, float fill);

// The displacement fields (dx, dy), each H x W, of elastic step `step` for stream `offset`
// (augment_smooth.cpp).
void elastic_field(float* f, std::int64_t h, std::int64_t w, float alpha, const SmoothCoef& c, std::uint64_t seed,
                   std::uint64_t offset, std::int64_t step);

// axis_weights<K> for n coordinates at once (weights in K rows of n), written out so that
// the loop vectorizes: the same operations, value by value.
template <int K>
inline void row_weights(const float* __restrict s, std::int64_t n, float* __restrict wt, std::int32_t* __restrict k) {
  for (std::int64_t x = 0; x < n; ++x) {
    float v = s[x];
    v = v > -1.0e9f ? v : -1.0e9f;  // clamp_coord
    v = v < 1.0e9f ? v : 1.0e9f;
    if constexpr (K == 1) {
      wt[x] = 1.0f;
      k[x] = static_cast<std::int32_t>(std::floor(v + 0.5f));
    } else if constexpr (K == 2) {
      const float f = std::floor(v);
      const float t = v - f;
      wt[x] = 1.0f - t;
      wt[n + x] = t;
      k[x] = static_cast<std::int32_t>(f);
    } else {
      const float f = std::floor(v);
      const float t = v - f;
      const float t2 = t * t, t3 = t2 * t;
      wt[x] = 0.5f * ((2.0f * t2 - t3) - t);
      wt[n + x] = 0.5f * ((3.0f * t3 - 5.0f * t2) + 2.0f);
      wt[2 * n + x] = 0.5f * ((4.0f * t2 - 3.0f * t3) + t);
      wt[3 * n + x] = 0.5f * (t3 - t2);
      k[x] = static_cast<std::int32_t>(f) - 1;
    }
  }
}

// The int32 offsets of a padded image fit when its size does (with the 4 bytes of slack).
inline bool padded_fits(const ImageShape& in, std::int64_t pad) {
  return (in.w + 2 * pad) * (in.h + 2 * pad) * in.p * in.q < (std::int64_t{1} << 31) - 64;
}

#if defined(__AVX2__)
// store_value<uint8> on 8 lanes, as int32.
inline __m256i store_bytes8(__m256 acc) {
  acc = _mm256_min_ps(_mm256_max_ps(acc, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));  // NaN -> 0
  return _mm256_cvttps_epi32(_mm256_add_ps(acc, _mm256_set1_ps(0.5f)));
}

// Stores the low 24 bytes of v at d. With `room` (8 more bytes at d + 24 that are written
// later anyway) as one 32-byte store.
inline void store24(std::uint8_t* d, __m256i v, bool room) {
  if (room) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), v);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm256_castsi256_si128(v));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 16), _mm256_extracti128_si256(v, 1));
  }
}

// Stores 8 RGB pixels (R | G << 8 | B << 16 in each int32 lane) as 24 bytes at d.
inline void store_rgb8(std::uint8_t* d, __m256i packed, bool room) {
  // 4 pixels of 3 bytes in the low 12 bytes of each 128-bit lane, then the two lanes joined.
  const __m256i squeeze = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6,
                                           8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  packed = _mm256_shuffle_epi8(packed, squeeze);
  store24(d, _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7)), room);
}
#endif

}  // namespace seisoku::cpu::augment_impl
