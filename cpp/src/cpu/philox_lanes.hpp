#pragma once
// Philox4x32-10 for kLanes consecutive blocks at once, written as independent lanes so the
// compiler vectorizes the rounds (32x32->64 multiplies). Same bits as philox::draw.
#include <cstdint>

namespace seisoku::cpu {

constexpr int kLanes = 8;

// words[4 * j + k] = word k of block first + j, for j < kLanes: element order of a draw.
inline void philox_lanes(std::uint64_t seed, std::uint64_t offset, std::uint64_t first,
                         std::uint32_t (&words)[4 * kLanes]) {
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
}

}  // namespace seisoku::cpu
