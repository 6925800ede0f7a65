#pragma once
// Philox4x32-10 for many consecutive blocks at once (same bits as philox::draw). Each 64-bit
// lane of a vector register carries one block's counter word in its low half, so a round is one
// 32x32->64 multiply per word pair (vpmuludq reads the low halves and ignores what the high
// halves hold), a shift and an xor of three values, with no shuffles. Four registers of blocks
// run interleaved (4 blocks each with AVX2, 8 with AVX-512, whose vpternlogq folds the two xors
// into one instruction), enough to hide the multiply latency; the words are put into block order
// once at the end. Without AVX2 the same rounds run on independent scalar lanes.
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {

constexpr int kLanes = 16;  // blocks of philox_lanes: a multiple of 16

#if defined(__AVX512F__)
namespace detail_avx512 {
// The zero-masking forms with every lane selected: the same instructions as the plain
// intrinsics, whose GCC 12 expansions through _mm512_undefined_epi32 draw false
// -Wuninitialized warnings once inlined.
constexpr __mmask8 kAll = 0xFF;
inline __m512i mul32(__m512i a, __m512i b) { return _mm512_maskz_mul_epu32(kAll, a, b); }
inline __m512i high32(__m512i a) { return _mm512_maskz_srli_epi64(kAll, a, 32); }
inline __m512i low_to_high32(__m512i a) { return _mm512_maskz_slli_epi64(kAll, a, 32); }

// Blocks first .. first + 8 S - 1: words[4 j + k] = word k of block first + j.
template <int S>
inline void philox_sets(std::uint64_t seed, std::uint64_t offset, std::uint64_t first, std::uint32_t* words) {
  __m512i c0[S], c1[S], c2[S], c3[S];
  const __m512i off_lo = _mm512_set1_epi64(static_cast<long long>(offset & 0xFFFFFFFFu));
  const __m512i off_hi = _mm512_set1_epi64(static_cast<long long>(offset >> 32));
  for (int s = 0; s < S; ++s) {
    const __m512i b = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(first + 8 * s)),
                                       _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    c0[s] = b;
    c1[s] = high32(b);
    c2[s] = off_lo;
    c3[s] = off_hi;
  }
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53u), m1 = _mm512_set1_epi64(0xCD9E8D57u);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m512i key0 = _mm512_set1_epi64(k0), key1 = _mm512_set1_epi64(k1);
    for (int s = 0; s < S; ++s) {
      // High halves of the lanes are garbage from here on; only low halves are ever used.
      const __m512i p0 = mul32(c0[s], m0), p1 = mul32(c2[s], m1);
      c0[s] = _mm512_ternarylogic_epi64(high32(p1), c1[s], key0, 0x96);  // a ^ b ^ c
      c1[s] = p1;
      c2[s] = _mm512_ternarylogic_epi64(high32(p0), c3[s], key1, 0x96);
      c3[s] = p0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  // Per 64-bit lane j: (word 0, word 1) and (word 2, word 3) of block j; the unpacks give blocks
  // (0, 2, 4, 6) and (1, 3, 5, 7) per 128-bit lane, the permutes put them in order.
  const __m512i first4 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m512i last4 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
  for (int s = 0; s < S; ++s) {
    const __m512i w01 = _mm512_mask_blend_epi32(0xAAAA, c0[s], low_to_high32(c1[s]));
    const __m512i w23 = _mm512_mask_blend_epi32(0xAAAA, c2[s], low_to_high32(c3[s]));
    const __m512i even = _mm512_maskz_unpacklo_epi64(kAll, w01, w23);
    const __m512i odd = _mm512_maskz_unpackhi_epi64(kAll, w01, w23);
    _mm512_storeu_si512(words + 32 * s, _mm512_permutex2var_epi64(even, first4, odd));
    _mm512_storeu_si512(words + 32 * s + 16, _mm512_permutex2var_epi64(even, last4, odd));
  }
}
}  // namespace detail_avx512
#elif defined(__AVX2__)
namespace detail_avx2 {
// Blocks first .. first + 4 S - 1: words[4 j + k] = word k of block first + j.
template <int S>
inline void philox_sets(std::uint64_t seed, std::uint64_t offset, std::uint64_t first, std::uint32_t* words) {
  __m256i c0[S], c1[S], c2[S], c3[S];
  const __m256i off_lo = _mm256_set1_epi64x(static_cast<long long>(offset & 0xFFFFFFFFu));
  const __m256i off_hi = _mm256_set1_epi64x(static_cast<long long>(offset >> 32));
  for (int s = 0; s < S; ++s) {
    const __m256i b = _mm256_add_epi64(_mm256_set1_epi64x(static_cast<long long>(first + 4 * s)),
                                       _mm256_setr_epi64x(0, 1, 2, 3));
    c0[s] = b;
    c1[s] = _mm256_srli_epi64(b, 32);
    c2[s] = off_lo;
    c3[s] = off_hi;
  }
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53u), m1 = _mm256_set1_epi64x(0xCD9E8D57u);
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const __m256i key0 = _mm256_set1_epi64x(k0), key1 = _mm256_set1_epi64x(k1);
    for (int s = 0; s < S; ++s) {
      // High halves of the lanes are garbage from here on; only low halves are ever used. The
      // key is folded into the old word first, off the multiply's critical path.
      const __m256i p0 = _mm256_mul_epu32(c0[s], m0), p1 = _mm256_mul_epu32(c2[s], m1);
      c0[s] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), _mm256_xor_si256(c1[s], key0));
      c1[s] = p1;
      c2[s] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), _mm256_xor_si256(c3[s], key1));
      c3[s] = p0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  __m256i* out = reinterpret_cast<__m256i*>(words);
  for (int s = 0; s < S; ++s) {
    // Per 64-bit lane j: (word 0, word 1) and (word 2, word 3) of block j.
    const __m256i w01 = _mm256_blend_epi32(c0[s], _mm256_slli_epi64(c1[s], 32), 0xAA);
    const __m256i w23 = _mm256_blend_epi32(c2[s], _mm256_slli_epi64(c3[s], 32), 0xAA);
    const __m256i u0 = _mm256_unpacklo_epi64(w01, w23), u1 = _mm256_unpackhi_epi64(w01, w23);
    _mm256_storeu_si256(out + 2 * s, _mm256_permute2x128_si256(u0, u1, 0x20));
    _mm256_storeu_si256(out + 2 * s + 1, _mm256_permute2x128_si256(u0, u1, 0x31));
  }
}
// Blocks J .. B - 1 of philox_blocks<B>: sets of 3 registers (12 blocks), 16 ymm registers hold
// their counters, keys and multipliers without spilling; the rest in sets of 2 and 1.
template <int B, int J>
inline void philox_from(std::uint64_t seed, std::uint64_t offset, std::uint64_t first, std::uint32_t* words) {
  if constexpr (J < B) {
    constexpr int S = B - J >= 12 ? 3 : B - J >= 8 ? 2 : 1;
    philox_sets<S>(seed, offset, first + J, words + 4 * J);
    philox_from<B, J + 4 * S>(seed, offset, first, words);
  }
}
}  // namespace detail_avx2
#endif

// words[4 * j + k] = word k of block first + j, for j < B (a multiple of 16): the element order
// of a draw.
template <int B>
inline void philox_blocks(std::uint64_t seed, std::uint64_t offset, std::uint64_t first, std::uint32_t* words) {
  static_assert(B % 16 == 0, "philox_blocks draws blocks in sets of 16");
#if defined(__AVX512F__)
  for (int j = 0; j < B; j += 32) {
    if (B - j >= 32) detail_avx512::philox_sets<4>(seed, offset, first + static_cast<std::uint64_t>(j), words + 4 * j);
    else detail_avx512::philox_sets<2>(seed, offset, first + static_cast<std::uint64_t>(j), words + 4 * j);
  }
#elif defined(__AVX2__)
  detail_avx2::philox_from<B, 0>(seed, offset, first, words);
#else
  for (int j0 = 0; j0 < B; j0 += 16) {
    std::uint32_t c0[16], c1[16], c2[16], c3[16];
    for (int j = 0; j < 16; ++j) {
      const std::uint64_t b = first + static_cast<std::uint64_t>(j0 + j);
      c0[j] = static_cast<std::uint32_t>(b);
      c1[j] = static_cast<std::uint32_t>(b >> 32);
      c2[j] = static_cast<std::uint32_t>(offset);
      c3[j] = static_cast<std::uint32_t>(offset >> 32);
    }
    std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      for (int j = 0; j < 16; ++j) {
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
    for (int j = 0; j < 16; ++j) {
      std::uint32_t* w = words + 4 * (j0 + j);
      w[0] = c0[j];
      w[1] = c1[j];
      w[2] = c2[j];
      w[3] = c3[j];
    }
  }
#endif
}

// words[4 * j + k] = word k of block first + j, for j < kLanes: the element order of a draw.
inline void philox_lanes(std::uint64_t seed, std::uint64_t offset, std::uint64_t first,
                         std::uint32_t (&words)[4 * kLanes]) {
  philox_blocks<kLanes>(seed, offset, first, words);
}

}  // namespace seisoku::cpu
