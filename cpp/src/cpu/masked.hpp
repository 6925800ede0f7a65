#pragma once
// Loops over elements that hand each element its 32-bit Philox word: words come from
// philox_lanes in groups of 4 * kLanes, so element i always sees word i % 4 of block i / 4.
#include <algorithm>
#include <cstdint>

#include "parallel.hpp"
#include "philox_lanes.hpp"

namespace seisoku::cpu {

constexpr std::int64_t kWordGroup = 4 * kLanes;

// f(first, count, words): elements first .. first + count - 1 take words[0 .. count - 1];
// count is kWordGroup except at the end. Ranges from parallel_for start at multiples of 64.
template <class F>
void for_word_groups(std::int64_t n, std::uint64_t seed, std::uint64_t offset, F&& f) {
  parallel_for(n, [&](std::int64_t i0, std::int64_t i1) {
    alignas(32) std::uint32_t words[kWordGroup];
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

}  // namespace seisoku::cpu
