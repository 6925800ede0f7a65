// Front-end of DropConnect's Gaussian inference: validate, then dispatch on the device.
#include "seisoku/dropconnect.hpp"

#include <string>

#include "core/check.hpp"
#include "kernels/dropconnect.hpp"

namespace seisoku {

void dropconnect_gaussian(const Tensor& mean, const Tensor& var, const Tensor& out, Activation act, double slope,
                          std::int64_t samples, std::uint64_t seed, std::uint64_t offset) {
  const char* op = "dropconnect_gaussian";
  detail::check_defined(op, "mean", mean);
  detail::check_defined(op, "var", var);
  detail::check_defined(op, "out", out);
  detail::check_dtype(op, "mean", mean, {DType::float32, DType::float64});
  detail::check_same_dtype(op, "mean", mean, "var", var);
  detail::check_same_dtype(op, "mean", mean, "out", out);
  detail::check_same_shape(op, "mean", mean, "var", var);
  detail::check_same_shape(op, "mean", mean, "out", out);
  detail::check_same_device(op, "mean", mean, "var", var);
  detail::check_same_device(op, "mean", mean, "out", out);
  if (samples < 1) detail::fail(op, "argument 'samples' must be >= 1, got " + std::to_string(samples));
  if (!(slope >= 0.0)) detail::fail(op, "argument 'slope' must be >= 0, got " + std::to_string(slope));
  detail::check_no_overlap(op, "out", out, "var", var);
  if (out.numel() == 0) return;
  SEISOKU_DISPATCH(out, dropconnect_gaussian, mean, var, out, act, slope, samples, seed, offset);
}

}  // namespace seisoku
