#pragma once
// Random fills from the Philox4x32-10 stream (seed, offset); see philox.hpp for the layout.
// The same (seed, offset) gives the same bits on CPU and CUDA and for any thread count.
#include <cstdint>

#include "seisoku/tensor.hpp"

namespace seisoku {

// out ~ U[low, high) (never high, even after rounding); float32 or float64.
SEISOKU_API void uniform(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double low = 0.0,
                         double high = 1.0);
// out ~ N(mean, stddev^2) by Box-Muller; float32 or float64.
SEISOKU_API void normal(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double mean = 0.0,
                        double stddev = 1.0);
// out ~ Bernoulli(p) as 1 or 0; float32, float64 or uint8; p in [0, 1].
SEISOKU_API void bernoulli(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double p);

// Hands out stream offsets: each draw takes a fresh offset, so draws never overlap.
class SEISOKU_API Generator {
 public:
  explicit Generator(std::uint64_t seed, std::uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  void set_offset(std::uint64_t offset) { offset_ = offset; }
  // Returns the current offset and advances it by n.
  std::uint64_t next_offset(std::uint64_t n = 1) {
    const std::uint64_t o = offset_;
    offset_ += n;
    return o;
  }

 private:
  std::uint64_t seed_;
  std::uint64_t offset_;
};

}  // namespace seisoku
