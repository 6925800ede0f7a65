#pragma once
// Philox4x32-10 for kLanes consecutive blocks at once (same bits as philox::draw). With
// AVX2, each 64-bit lane of a register carries one block's counter word in its low half, so a
// round is one 32x32->64 multiply per word pair (vpmuludq reads the low halves and ignores what
// the high halves hold), a shift and two xors, with no shuffles; two registers of 4 blocks run
// interleaved to hide the multiply latency, and the words are shuffled into block order once at
// the end. Without AVX2 the same rounds run on independent scalar lanes.
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {

constexpr int kLanes = 16;  // a multiple of 8 (two registers of 4 blocks)

#if defined(__AVX2__)
namespace detail_avx2 {
// Blocks first .. first + 7: words[4 j + k] = word k of block first + j.
inline void philox_8blocks(std::uint64_t seed, std::uint64_t offset, std::uint64_t first, std::uint32_t* words) {
  constexpr int kSets = 2;
  __m256i c0[kSets], c1[kSets], c2[kSets], c3[kSets];
  for (int s = 0; s < kSets; ++s) {
    const __m256i b = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<long long>(first + 4 * s)),
                                       _mm256_setr_epi64x(0, 1, 2, 3));
    c0[s] = b;
    c1[s] = _mm256_srli_epi64(b, 32);
    c2[s] = _mm256_set1_epi64x(static_cast<long long>(offset & 0xFFFFFFFFu));
    c3[s] = _mm256_set1_epi64x(static_cast<long long>(offset >> 32));
  }
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53u), m1 = _mm256_set1_epi64x(0xCD9E8D57u);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m256i key0 = _mm256_set1_epi64x(k0), key1 = _mm256_set1_epi64x(k1);
    for (int s = 0; s < kSets; ++s) {
      // High halves of the lanes are garbage from here on; only low halves are ever used.
      const __m256i p0 = _mm256_mul_epu32(c0[s], m0), p1 = _mm256_mul_epu32(c2[s], m1);
      c0[s] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p1, 32), c1[s]), key0);
      c1[s] = p1;
      c2[s] = _mm256_xor_si256(_mm256_xor_si256(_mm256_srli_epi64(p0, 32), c3[s]), key1);
      c3[s] = p0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  __m256i* out = reinterpret_cast<__m256i*>(words);
  for (int s = 0; s < kSets; ++s) {
    // Per 64-bit lane j: (word 0, word 1) and (word 2, word 3) of block j.
    const __m256i w01 = _mm256_blend_epi32(c0[s], _mm256_slli_epi64(c1[s], 32), 0xAA);
    const __m256i w23 = _mm256_blend_epi32(c2[s], _mm256_slli_epi64(c3[s], 32), 0xAA);
    const __m256i u0 = _mm256_unpacklo_epi64(w01, w23), u1 = _mm256_unpackhi_epi64(w01, w23);
    _mm256_storeu_si256(out + 2 * s, _mm256_permute2x128_si256(u0, u1, 0x20));
    _mm256_storeu_si256(out + 2 * s + 1, _mm256_permute2x128_si256(u0, u1, 0x31));
  }
}
}  // namespace detail_avx2
#endif

// words[4 * j + k] = word k of block first + j, for j < kLanes: the element order of a draw.
inline void philox_lanes(std::uint64_t seed, std::uint64_t offset, std::uint64_t first,
                         std::uint32_t (&words)[4 * kLanes]) {
#if defined(__AVX2__)
  for (int j = 0; j < kLanes; j += 8)
    detail_avx2::philox_8blocks(seed, offset, first + static_cast<std::uint64_t>(j), words + 4 * j);
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
