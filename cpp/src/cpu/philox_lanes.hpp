#pragma once
// Philox4x32-10 for kLanes consecutive blocks at once (same bits as philox::draw). With
// AVX2, 8 blocks live in one register per counter word, a round is two 32x32->64 multiplies
// per register (vpmuludq on even and odd lanes), and two such sets run interleaved to hide
// the multiply latency; without AVX2 the same rounds run on independent scalar lanes.
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {

constexpr int kLanes = 16;  // a multiple of 8 (one AVX2 register of blocks)

#if defined(__AVX2__)
namespace detail_avx2 {
// (hi, lo) 32-bit halves of the products a * m for 8 lanes.
inline void mulhilo(__m256i a, __m256i m, __m256i* hi, __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}
}  // namespace detail_avx2
#endif

// words[4 * j + k] = word k of block first + j, for j < kLanes: the element order of a draw.
inline void philox_lanes(std::uint64_t seed, std::uint64_t offset, std::uint64_t first,
                         std::uint32_t (&words)[4 * kLanes]) {
#if defined(__AVX2__)
  using namespace detail_avx2;
  // Two independent sets of 8 blocks per round, so the multiply latencies overlap.
  alignas(32) std::uint32_t lo_words[kLanes], hi_words[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    const std::uint64_t b = first + static_cast<std::uint64_t>(j);
    lo_words[j] = static_cast<std::uint32_t>(b);
    hi_words[j] = static_cast<std::uint32_t>(b >> 32);
  }
  constexpr int kSets = kLanes / 8;
  __m256i c0[kSets], c1[kSets], c2[kSets], c3[kSets];
  for (int s = 0; s < kSets; ++s) {
    c0[s] = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo_words) + s);
    c1[s] = _mm256_load_si256(reinterpret_cast<const __m256i*>(hi_words) + s);
    c2[s] = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(offset)));
    c3[s] = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(offset >> 32)));
  }
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53u), m1 = _mm256_set1_epi64x(0xCD9E8D57u);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m256i key0 = _mm256_set1_epi32(static_cast<int>(k0)), key1 = _mm256_set1_epi32(static_cast<int>(k1));
    for (int s = 0; s < kSets; ++s) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo(c0[s], m0, &hi0, &lo0);
      mulhilo(c2[s], m1, &hi1, &lo1);
      c0[s] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[s]), key0);
      c1[s] = lo1;
      c2[s] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[s]), key1);
      c3[s] = lo0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  // 4 x 8 transposes into block order.
  __m256i* out = reinterpret_cast<__m256i*>(words);
  for (int s = 0; s < kSets; ++s) {
    const __m256i t0 = _mm256_unpacklo_epi32(c0[s], c1[s]), t1 = _mm256_unpackhi_epi32(c0[s], c1[s]);
    const __m256i t2 = _mm256_unpacklo_epi32(c2[s], c3[s]), t3 = _mm256_unpackhi_epi32(c2[s], c3[s]);
    const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    _mm256_storeu_si256(out + 4 * s + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
    _mm256_storeu_si256(out + 4 * s + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
    _mm256_storeu_si256(out + 4 * s + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
    _mm256_storeu_si256(out + 4 * s + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
  }
#else
  std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    const std::uint64_t b = first + static_cast<std::uint64_t>(j);
    c0[j] = static_cast<std::uint32_t>(b);
    c1[j] = static_cast<std::uint32_t>(b >> 32);
    c2[j] = static_cast<std::uint32_t>(offset);
    c3[j] = static_cast<std::uint32_t>(offset >> 32);
  }
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int j = 0; j < kLanes; ++j) {
      const std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c0[j];
      const std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * c2[j];
      const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
      const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = static_cast<std::uint32_t>(p1);
      c3[j] = static_cast<std::uint32_t>(p0);
      c0[j] = n0;
      c2[j] = n2;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int j = 0; j < kLanes; ++j) {
    words[4 * j + 0] = c0[j];
    words[4 * j + 1] = c1[j];
    words[4 * j + 2] = c2[j];
    words[4 * j + 3] = c3[j];
  }
#endif
}

}  // namespace seisoku::cpu
