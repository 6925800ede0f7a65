#pragma once
// Noise and masks drawn from the Philox stream (seed, offset): the same bits on CPU and CUDA
// and for any thread count. Element i of a tensor is kept by dropout when 32-bit word i of
// the stream is below (1 - p) * 2^32 — the same draw as bernoulli(1 - p) — so a mask never
// needs to be stored: the backward pass draws it again.
#include <cstdint>

#include "seisoku/tensor.hpp"

namespace seisoku {

// out = x * (mask * scale), mask ~ Bernoulli(1 - p); p in [0, 1). A dropped element is 0
// (NaN or infinite inputs give NaN, as any product with 0). Inverted dropout uses
// scale = 1 / (1 - p); the lecture's variant uses scale = 1 and multiplies by (1 - p) at
// evaluation. The backward pass is the same op applied to the gradient. out may alias x.
SEISOKU_API void dropout(const Tensor& x, const Tensor& out, double p, std::uint64_t seed, std::uint64_t offset,
                         double scale);
// out = x + N(0, stddev^2) noise (Box-Muller, as seisoku::normal). out may alias x.
SEISOKU_API void gaussian_noise(const Tensor& x, const Tensor& out, double stddev, std::uint64_t seed,
                                std::uint64_t offset);

}  // namespace seisoku
