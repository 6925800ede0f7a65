// Front-ends of the random fills: validate, then dispatch on the device.
#include "seisoku/random.hpp"

#include <cmath>

#include "core/check.hpp"
#include "kernels/core.hpp"
#include "seisoku/philox.hpp"

namespace seisoku {

void uniform(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double low, double high) {
  detail::check_defined("uniform", "out", out);
  detail::check_dtype("uniform", "out", out, {DType::float32, DType::float64});
  if (!std::isfinite(low) || !std::isfinite(high) || !(low <= high))
    detail::fail("uniform", "need finite low <= high, got low=" + std::to_string(low) + " high=" + std::to_string(high));
  SEISOKU_DISPATCH(out, uniform, out, seed, offset, low, high);
}

void normal(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double mean, double stddev) {
  detail::check_defined("normal", "out", out);
  detail::check_dtype("normal", "out", out, {DType::float32, DType::float64});
  if (!std::isfinite(mean)) detail::fail("normal", "mean must be finite, got " + std::to_string(mean));
  if (!std::isfinite(stddev) || stddev < 0)
    detail::fail("normal", "argument 'std' must be finite and >= 0, got " + std::to_string(stddev));
  SEISOKU_DISPATCH(out, normal, out, seed, offset, mean, stddev);
}

void bernoulli(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double p) {
  detail::check_defined("bernoulli", "out", out);
  detail::check_dtype("bernoulli", "out", out, {DType::float32, DType::float64, DType::uint8});
  if (!(p >= 0.0 && p <= 1.0)) detail::fail("bernoulli", "p must be in [0, 1], got " + std::to_string(p));
  const std::uint64_t threshold = philox::bernoulli_threshold(p);
  SEISOKU_DISPATCH(out, bernoulli, out, seed, offset, threshold);
}

const std::shared_ptr<Generator>& default_generator() {
  static const std::shared_ptr<Generator> generator = std::make_shared<Generator>(0);
  return generator;
}

Generator& manual_seed(std::uint64_t seed) {
  default_generator()->reset(seed, 0);
  return *default_generator();
}

}  // namespace seisoku
