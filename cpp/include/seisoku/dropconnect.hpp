#pragma once
// Evaluation of a DropConnect layer by the moment-matched Gaussian of its pre-activation (Wan et
// al. 2013): with keep probability q = 1 - p, u = x (W * M)^T + b has mean q x W^T + b and
// variance q (1 - q) (x * x)(W * W)^T; the output is the mean of act(u) over `samples` draws.
#include <cstdint>

#include "seisoku/activation.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku {

// out = (1 / samples) sum_s act(mean + sqrt(var) * e_s) elementwise (float32 or float64, one shape,
// dtype and device), the e_s standard normals of the Philox stream (seed, offset): element i uses
// values i * samples ... i * samples + samples - 1 of the stream in the layout of seisoku::normal,
// so the result is the same bits on CPU and CUDA and for any thread count. var must be >= 0.
SEISOKU_API void dropconnect_gaussian(const Tensor& mean, const Tensor& var, const Tensor& out, Activation act,
                                      double slope, std::int64_t samples, std::uint64_t seed, std::uint64_t offset);

}  // namespace seisoku
