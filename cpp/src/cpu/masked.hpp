#pragma once
// Loops over elements that hand each element its random bits.
// * for_word_groups: element i takes the 32-bit Philox word i (word i % 4 of block i / 4), from
//   philox_lanes in groups of 4 * kLanes elements (uniform and Bernoulli draws).
// * for_mask_groups: element i takes the 16-bit mask draw i, half i % 2 (0: low, 1: high) of
//   word i / 2, i.e. 8 elements per block (dropout masks, see detail::mask_draw); groups of
//   kMaskGroup elements.
#include <algorithm>
#include <cstdint>

#include "kernels/nn_math.hpp"
#include "parallel.hpp"
#include "philox_lanes.hpp"
#include "seisoku/philox.hpp"

namespace seisoku::cpu {

constexpr std::int64_t kWordGroup = 4 * kLanes;
constexpr int kMaskBlocks = 32;
constexpr std::int64_t kMaskGroup = 8 * kMaskBlocks;

// f(first, count, words): elements first .. first + count - 1 take words[0 .. count - 1];
// count is kWordGroup except at the end. Ranges from parallel_for start at multiples of 64.
template <class F>
void for_word_groups(std::int64_t n, std::uint64_t seed, std::uint64_t offset, F&& f) {
  parallel_for(n, [&](std::int64_t i0, std::int64_t i1) {
    alignas(64) std::uint32_t words[kWordGroup];
    for (std::int64_t base = i0; base < i1; base += kWordGroup) {
      philox_lanes(seed, offset, static_cast<std::uint64_t>(base / 4), words);
      f(base, std::min(kWordGroup, i1 - base), static_cast<const std::uint32_t*>(words));
    }
  });
}

// f(i, word) for every element; for kernels whose per-element work dominates anyway.
template <class F>
void for_each_word(std::int64_t n, std::uint64_t seed, std::uint64_t offset, F&& f) {
  for_word_groups(n, seed, offset, [&](std::int64_t first, std::int64_t count, const std::uint32_t* words) {
    for (std::int64_t e = 0; e < count; ++e) f(first + e, words[e]);
  });
}

// draws[e] = 16-bit mask draw of element 8 * first_block + e, e < kMaskGroup.
inline void mask_draws(std::uint64_t seed, std::uint64_t offset, std::uint64_t first_block,
                       std::uint16_t (&draws)[kMaskGroup]) {
#if defined(__AVX2__)
  // x86 is little-endian: the words stored in block order are the halves in element order. The
  // vector stores may alias any type.
  philox_blocks<kMaskBlocks>(seed, offset, first_block, reinterpret_cast<std::uint32_t*>(draws));
#else
  std::uint32_t words[4 * kMaskBlocks];
  philox_blocks<kMaskBlocks>(seed, offset, first_block, words);
  for (int j = 0; j < 4 * kMaskBlocks; ++j) {
    draws[2 * j] = static_cast<std::uint16_t>(words[j] & 0xFFFFu);
    draws[2 * j + 1] = static_cast<std::uint16_t>(words[j] >> 16);
  }
#endif
}

// draws[e] = 16-bit mask draw of element `element` + e of the stream, e < kMaskGroup, for any
// element (not only multiples of 8): a tensor whose element 0 is element `first` of a larger
// one (rows [r, ...) of a batch split across processes) draws what those elements draw there.
inline void mask_draws_at(std::uint64_t seed, std::uint64_t offset, std::uint64_t element,
                          std::uint16_t (&draws)[kMaskGroup]) {
  const int shift = static_cast<int>(element % 8);
  if (shift == 0) {
    mask_draws(seed, offset, element / 8, draws);
    return;
  }
  alignas(64) std::uint16_t whole[kMaskGroup];
  mask_draws(seed, offset, element / 8, whole);
  std::copy(whole + shift, whole + kMaskGroup, draws);
  const philox::Block r = philox::draw(seed, offset, element / 8 + kMaskBlocks);  // the last `shift`
  for (int k = 0; k < shift; ++k)
    draws[kMaskGroup - shift + k] = static_cast<std::uint16_t>(detail::mask_draw(r, k));
}

// f(first, count, draws): elements first .. first + count - 1 take draws[0 .. count - 1], the
// draws of stream elements start + first ..; count is kMaskGroup except at the end of a
// thread's range. Ranges from parallel_for start at multiples of 64 (whole blocks of 8
// elements).
template <class F>
void for_mask_groups(std::int64_t n, std::uint64_t seed, std::uint64_t offset, F&& f, std::uint64_t start = 0) {
  parallel_for(n, [&](std::int64_t i0, std::int64_t i1) {
    alignas(64) std::uint16_t draws[kMaskGroup];
    for (std::int64_t base = i0; base < i1; base += kMaskGroup) {
      mask_draws_at(seed, offset, start + static_cast<std::uint64_t>(base), draws);
      f(base, std::min(kMaskGroup, i1 - base), static_cast<const std::uint16_t*>(draws));
    }
  });
}

}  // namespace seisoku::cpu
