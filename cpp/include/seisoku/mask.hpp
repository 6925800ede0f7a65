#pragma once
// Noise and masks drawn from the Philox stream (seed, offset): the same bits on CPU and CUDA
// and for any thread count, so a mask never needs to be stored: the backward pass draws it
// again.
//
// The dropout mask. Element i (in row-major order) of a tensor takes the 16-bit draw
//   h_i = (w >> (16 * (i % 2))) & 0xFFFF,  w = word (i / 2) % 4 of block i / 8 of the stream,
// that is, uint16 number i of the stream's 32-bit words read as little-endian uint16 pairs
// (8 elements per Philox4x32-10 block), and is kept iff
//   h_i < K,  K = 65536 - D,  D = round(65536 p) (halves round up).
// So p is used at a resolution of 2^-16: the drop probability is exactly D / 65536, within
// 2^-17 of p; p < 2^-17 drops nothing (the op is then a copy or a scale) and p >= 1 - 2^-17 drops
// everything. The fused Linear epilogue (seisoku::linear, bias_act_dropout) draws the same mask
// for the same (seed, offset, element index). This is not Generator::bernoulli's draw (one
// 32-bit word per element): 16 bits per element halve the Philox work per element.
#include <cstdint>

#include "seisoku/tensor.hpp"

namespace seisoku {

// out = x * (mask * scale), mask as above (a Bernoulli(1 - D / 65536) draw per element);
// p in [0, 1). With scale = 1 / (1 - p) the mean of out is x (1 - D / 65536) / (1 - p), within
// a relative 2^-17 / (1 - p) of x. A dropped element is 0
// (NaN or infinite inputs give NaN, as any product with 0). Inverted dropout uses
// scale = 1 / (1 - p); the lecture's variant uses scale = 1 and multiplies by (1 - p) at
// evaluation. The backward pass is the same op applied to the gradient. out may alias x.
// first: the stream element of x's element 0 (default 0), so that a shard of a batch, rows
// [r, r + n) of rows of F elements, draws with first = r * F what those rows draw in the whole
// batch (data parallel training).
SEISOKU_API void dropout(const Tensor& x, const Tensor& out, double p, std::uint64_t seed, std::uint64_t offset,
                         double scale, std::uint64_t first = 0);
// out = x + N(0, stddev^2) noise (Box-Muller, as seisoku::normal). out may alias x.
SEISOKU_API void gaussian_noise(const Tensor& x, const Tensor& out, double stddev, std::uint64_t seed,
                                std::uint64_t offset);

}  // namespace seisoku
