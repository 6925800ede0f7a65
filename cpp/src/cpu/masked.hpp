#pragma once
// A loop over elements that hands each element its 32-bit Philox word: words come from
// philox_lanes in groups of 4 * kLanes, so element i always sees word i % 4 of block i / 4.
#include <algorithm>
#include <cstdint>

#include "parallel.hpp"
#include "philox_lanes.hpp"

namespace seisoku::cpu {

// f(i, word) for i in [0, n); ranges from parallel_for start at multiples of 64.
template <class F>
void for_each_word(std::int64_t n, std::uint64_t seed, std::uint64_t offset, F&& f) {
  constexpr std::int64_t kGroup = 4 * kLanes;
  parallel_for(n, [&](std::int64_t i0, std::int64_t i1) {
    std::uint32_t words[kGroup];
    for (std::int64_t base = i0; base < i1; base += kGroup) {
      philox_lanes(seed, offset, static_cast<std::uint64_t>(base / 4), words);
      const std::int64_t cnt = std::min(kGroup, i1 - base);
      for (std::int64_t e = 0; e < cnt; ++e) f(base + e, words[e]);
    }
  });
}

}  // namespace seisoku::cpu
