// Front-ends of dropout and Gaussian noise.
#include "seisoku/mask.hpp"

#include <cmath>

#include "core/check.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "seisoku/elementwise.hpp"

namespace seisoku {
namespace {

void check_in_out(const char* op, const Tensor& x, const Tensor& out) {
  detail::check_defined(op, "x", x);
  detail::check_defined(op, "out", out);
  detail::check_dtype(op, "x", x, {DType::float32, DType::float64});
  detail::check_same_dtype(op, "x", x, "out", out);
  detail::check_same_shape(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
}

}  // namespace

void dropout(const Tensor& x, const Tensor& out, double p, std::uint64_t seed, std::uint64_t offset, double scale,
             std::uint64_t first) {
  check_in_out("dropout", x, out);
  if (!(p >= 0.0 && p < 1.0)) detail::fail("dropout", "p must be in [0, 1), got " + std::to_string(p));
  if (!std::isfinite(scale)) detail::fail("dropout", "scale must be finite, got " + std::to_string(scale));
  if (x.dtype() == DType::float32 && std::fabs(scale) > 3.4028234663852886e38)
    detail::fail("dropout", "scale " + std::to_string(scale) + " does not fit in float32");
  if (!detail::drops(p)) {
    scale == 1.0 ? copy(x, out) : seisoku::scale(scale, x, out);
    return;
  }
  SEISOKU_DISPATCH(x, dropout, x, out, detail::keep_bound(p), seed, offset, scale, first);
}

void gaussian_noise(const Tensor& x, const Tensor& out, double stddev, std::uint64_t seed, std::uint64_t offset) {
  check_in_out("gaussian_noise", x, out);
  if (!(stddev >= 0.0 && std::isfinite(stddev)))
    detail::fail("gaussian_noise", "stddev must be finite and >= 0, got " + std::to_string(stddev));
  if (x.dtype() == DType::float32 && stddev > 3.4028234663852886e38)
    detail::fail("gaussian_noise", "stddev " + std::to_string(stddev) + " does not fit in float32");
  SEISOKU_DISPATCH(x, gaussian_noise, x, out, stddev, seed, offset);
}

}  // namespace seisoku
