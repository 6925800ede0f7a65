#pragma once
// Standard normal float32 values in groups of kWordGroup elements: element i is lane i % 4 of
// the Box-Muller pairs of Philox block i / 4 (as seisoku::normal and philox::box_muller), the
// same bits. With AVX2 the Box-Muller transform runs on 8 pairs at once: every step is one IEEE
// operation (multiply, add, divide, fma, sqrt, exact conversions and selects) of
// philox::log_positive / sincos_2pi in the same order, so each lane rounds as the scalar code
// and the CUDA kernels do.
#include <cstdint>

#include "masked.hpp"
#include "seisoku/philox.hpp"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {

#if defined(__AVX2__)
namespace detail_avx2 {

inline __m256 fmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
inline __m256 cf(double v) { return _mm256_set1_ps(static_cast<float>(v)); }

// philox::box_muller on 8 pairs: u1 from words w1 (open unit), u2 from words w2.
inline void box_muller8(__m256i w1, __m256i w2, __m256* n0, __m256* n1) {
  const __m256 ulp24 = _mm256_set1_ps(5.9604644775390625e-8f);
  const __m256 u1 = _mm256_mul_ps(
      _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srli_epi32(w1, 8), _mm256_set1_epi32(1))), ulp24);
  const __m256 u2 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w2, 8)), ulp24);

  // log_positive(u1)
  const __m256i bits = _mm256_castps_si256(u1);
  __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
  __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff)),
                                                 _mm256_set1_epi32(0x3f800000)));
  const __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = _mm256_blendv_ps(m, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), big);
  e = _mm256_sub_epi32(e, _mm256_castps_si256(big));  // the mask is -1 where m was halved
  const __m256 f = _mm256_sub_ps(m, _mm256_set1_ps(1.0f));
  const __m256 s = _mm256_div_ps(f, _mm256_add_ps(_mm256_set1_ps(2.0f), f));
  const __m256 z = _mm256_mul_ps(s, s);
  __m256 p = cf(2.0 / 21);
  p = fmadd(p, z, cf(2.0 / 19));
  p = fmadd(p, z, cf(2.0 / 17));
  p = fmadd(p, z, cf(2.0 / 15));
  p = fmadd(p, z, cf(2.0 / 13));
  p = fmadd(p, z, cf(2.0 / 11));
  p = fmadd(p, z, cf(2.0 / 9));
  p = fmadd(p, z, cf(2.0 / 7));
  p = fmadd(p, z, cf(2.0 / 5));
  p = fmadd(p, z, cf(2.0 / 3));
  const __m256 logm = fmadd(_mm256_mul_ps(s, z), p, _mm256_mul_ps(_mm256_set1_ps(2.0f), s));
  const __m256 ef = _mm256_cvtepi32_ps(e);
  const __m256 log = fmadd(ef, cf(0.693145751953125), fmadd(ef, cf(1.4286068203094172321e-06), logm));
  const __m256 r = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), log));

  // sincos_2pi(u2)
  const __m256 t4 = _mm256_mul_ps(u2, _mm256_set1_ps(4.0f));
  const __m256i q = _mm256_cvttps_epi32(t4);
  __m256 red = _mm256_sub_ps(t4, _mm256_cvtepi32_ps(q));
  const __m256 upper = _mm256_cmp_ps(red, _mm256_set1_ps(0.5f), _CMP_GT_OQ);
  red = _mm256_blendv_ps(red, _mm256_sub_ps(_mm256_set1_ps(1.0f), red), upper);
  const __m256 a = _mm256_mul_ps(red, cf(1.5707963267948966));
  const __m256 za = _mm256_mul_ps(a, a);
  __m256 ps = cf(-1.0 / 1307674368000.0);
  ps = fmadd(ps, za, cf(1.0 / 6227020800.0));
  ps = fmadd(ps, za, cf(-1.0 / 39916800.0));
  ps = fmadd(ps, za, cf(1.0 / 362880.0));
  ps = fmadd(ps, za, cf(-1.0 / 5040.0));
  ps = fmadd(ps, za, cf(1.0 / 120.0));
  ps = fmadd(ps, za, cf(-1.0 / 6.0));
  const __m256 sin_a = fmadd(_mm256_mul_ps(a, za), ps, a);
  __m256 pc = cf(1.0 / 20922789888000.0);
  pc = fmadd(pc, za, cf(-1.0 / 87178291200.0));
  pc = fmadd(pc, za, cf(1.0 / 479001600.0));
  pc = fmadd(pc, za, cf(-1.0 / 3628800.0));
  pc = fmadd(pc, za, cf(1.0 / 40320.0));
  pc = fmadd(pc, za, cf(-1.0 / 720.0));
  pc = fmadd(pc, za, cf(1.0 / 24.0));
  pc = fmadd(pc, za, cf(-0.5));
  const __m256 cos_a = fmadd(za, pc, _mm256_set1_ps(1.0f));
  const __m256 sa = _mm256_blendv_ps(sin_a, cos_a, upper), ca = _mm256_blendv_ps(cos_a, sin_a, upper);
  // Quadrant q & 3: 0 (sa, ca), 1 (ca, -sa), 2 (-sa, -ca), 3 (-ca, sa) as (sin, cos).
  const __m256 odd = _mm256_castsi256_ps(
      _mm256_cmpeq_epi32(_mm256_and_si256(q, _mm256_set1_epi32(1)), _mm256_set1_epi32(1)));
  const __m256 sn = _mm256_blendv_ps(sa, ca, odd), cs = _mm256_blendv_ps(ca, sa, odd);
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i neg_s = _mm256_and_si256(_mm256_slli_epi32(q, 30), sign);                          // q & 2
  const __m256i neg_c = _mm256_and_si256(_mm256_slli_epi32(_mm256_xor_si256(q, _mm256_srli_epi32(q, 1)), 31), sign);  // q&3 in {1,2}
  *n0 = _mm256_mul_ps(r, _mm256_xor_ps(cs, _mm256_castsi256_ps(neg_c)));
  *n1 = _mm256_mul_ps(r, _mm256_xor_ps(sn, _mm256_castsi256_ps(neg_s)));
}

}  // namespace detail_avx2
#endif

// normals[k] = standard normal from words[k] and its pair word (k ^ 1), k < kWordGroup: the
// words of kLanes Philox blocks in block order, as philox_lanes writes them.
inline void normals_from_words(const std::uint32_t* words, float* normals) {
#if defined(__AVX2__)
  using namespace detail_avx2;
  for (int k = 0; k < kWordGroup; k += 16) {
    // Pairs (word 2p, word 2p + 1) give elements 2p and 2p + 1.
    const __m256 lo = _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + k)));
    const __m256 hi = _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + k + 8)));
    const __m256i w1 = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8);
    const __m256i w2 = _mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8);
    __m256 n0, n1;
    box_muller8(w1, w2, &n0, &n1);
    const __m256 a = _mm256_unpacklo_ps(n0, n1), b = _mm256_unpackhi_ps(n0, n1);
    _mm256_storeu_ps(normals + k, _mm256_permute2f128_ps(a, b, 0x20));
    _mm256_storeu_ps(normals + k + 8, _mm256_permute2f128_ps(a, b, 0x31));
  }
#else
  for (int k = 0; k < kWordGroup; k += 2)
    philox::box_muller(philox::to_open_unit_float(words[k]), philox::to_unit_float(words[k + 1]), &normals[k],
                       &normals[k + 1]);
#endif
}

// normals[k] = standard normal of element first + k, k < kWordGroup; first is a multiple of 4.
inline void normal_group(std::uint64_t seed, std::uint64_t offset, std::int64_t first, float (&normals)[kWordGroup]) {
  alignas(32) std::uint32_t words[kWordGroup];
  philox_lanes(seed, offset, static_cast<std::uint64_t>(first / 4), words);
  normals_from_words(words, normals);
}

// f(first, count, normals): elements first .. first + count - 1 take normals[0 .. count - 1].
template <class F>
void for_normal_groups(std::int64_t n, std::uint64_t seed, std::uint64_t offset, F&& f) {
  parallel_for(n, [&](std::int64_t i0, std::int64_t i1) {
    alignas(32) float normals[kWordGroup];
    for (std::int64_t base = i0; base < i1; base += kWordGroup) {
      normal_group(seed, offset, base, normals);
      f(base, std::min(kWordGroup, i1 - base), static_cast<const float*>(normals));
    }
  });
}

}  // namespace seisoku::cpu
