#pragma once
// Random fills from the Philox4x32-10 stream (seed, offset); see philox.hpp for the layout.
// The same (seed, offset) gives the same bits on CPU and CUDA and for any thread count.
#include <atomic>
#include <cstdint>
#include <memory>

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

// Hands out stream offsets: each draw takes a fresh offset, so draws never overlap. Taking an
// offset is atomic, so threads may share one generator (each draw still gets its own offset).
class SEISOKU_API Generator {
 public:
  explicit Generator(std::uint64_t seed, std::uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  Generator(const Generator& other) : seed_(other.seed()), offset_(other.offset()) {}
  Generator& operator=(const Generator& other) {
    reset(other.seed(), other.offset());
    return *this;
  }
  std::uint64_t seed() const { return seed_.load(std::memory_order_relaxed); }
  std::uint64_t offset() const { return offset_.load(std::memory_order_relaxed); }
  void set_offset(std::uint64_t offset) { offset_.store(offset, std::memory_order_relaxed); }
  // Restarts the stream: a new seed and the offset the next draw takes.
  void reset(std::uint64_t seed, std::uint64_t offset = 0) {
    seed_.store(seed, std::memory_order_relaxed);
    offset_.store(offset, std::memory_order_relaxed);
  }
  // Returns the current offset and advances it by n (wrapping at 2^64).
  std::uint64_t next_offset(std::uint64_t n = 1) { return offset_.fetch_add(n, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> seed_;
  std::atomic<std::uint64_t> offset_;
};

// The process-wide generator: layers and initialisers built without a generator of their own
// draw from it when they draw (seed 0 until manual_seed).
SEISOKU_API const std::shared_ptr<Generator>& default_generator();
// Restarts the process-wide generator at (seed, offset 0) and returns it.
SEISOKU_API Generator& manual_seed(std::uint64_t seed);
// `generator` itself, or the process-wide generator when it is null.
inline Generator& generator_or_default(const std::shared_ptr<Generator>& generator) {
  return generator ? *generator : *default_generator();
}

}  // namespace seisoku
