#pragma once
// Kernel entry points of DropConnect's Gaussian inference (cpp/src/cpu/dropconnect.cpp,
// cuda/dropconnect.cu) and the per-element math both run.
#include <cmath>
#include <cstdint>

#include "kernels/core.hpp"
#include "kernels/nn_math.hpp"
#include "seisoku/activation.hpp"
#include "seisoku/philox.hpp"

namespace seisoku {
namespace detail {

template <class T>
SEISOKU_HD T sqrt_(T x) {
#if defined(__CUDA_ARCH__)
  return sqrt(x);
#else
  return std::sqrt(x);
#endif
}

// Standard normals j0 .. j0 + count - 1 of the stream (seed, offset) in the layout of
// seisoku::normal (float32: 4 per Philox block, Box-Muller on words (0, 1) and (2, 3); float64: 2
// per block), passed to f(value) in order.
template <class T, class F>
SEISOKU_HD void for_normals(std::uint64_t seed, std::uint64_t offset, std::uint64_t j0, std::int64_t count, F&& f) {
  constexpr int kPerBlock = sizeof(T) == 4 ? 4 : 2;
  std::uint64_t j = j0;
  for (std::int64_t done = 0; done < count;) {
    const philox::Block r = philox::draw(seed, offset, j / kPerBlock);
    T v[4];
    if constexpr (sizeof(T) == 4) {
      philox::box_muller(philox::to_open_unit_float(r.v[0]), philox::to_unit_float(r.v[1]), &v[0], &v[1]);
      philox::box_muller(philox::to_open_unit_float(r.v[2]), philox::to_unit_float(r.v[3]), &v[2], &v[3]);
    } else {
      philox::box_muller(philox::to_open_unit_double(r.v[0], r.v[1]), philox::to_unit_double(r.v[2], r.v[3]), &v[0],
                         &v[1]);
    }
    for (int k = static_cast<int>(j % kPerBlock); k < kPerBlock && done < count; ++k, ++done, ++j) f(v[k]);
  }
}

// One output of dropconnect_gaussian: the mean over `samples` draws of act(mean + sd * e), the sum
// in draw order.
template <class T>
SEISOKU_HD T dropconnect_gaussian_value(T mean, T var, Activation act, T slope, std::int64_t samples,
                                        std::uint64_t seed, std::uint64_t offset, std::int64_t i) {
  const T sd = sqrt_(var);
  T sum = T(0);
  for_normals<T>(seed, offset, static_cast<std::uint64_t>(i) * static_cast<std::uint64_t>(samples), samples,
                 [&](T e) { sum += act_forward(philox::fma_(sd, e, mean), act, slope); });
  return sum / static_cast<T>(samples);
}

}  // namespace detail

#define SEISOKU_DROPCONNECT_KERNEL_DECLS                                                                    \
  void dropconnect_gaussian(const Tensor& mean, const Tensor& var, const Tensor& out, Activation act,       \
                            double slope, std::int64_t samples, std::uint64_t seed, std::uint64_t offset);

namespace cpu {
SEISOKU_DROPCONNECT_KERNEL_DECLS
}  // namespace cpu

namespace gpu {
SEISOKU_DROPCONNECT_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_DROPCONNECT_KERNEL_DECLS

}  // namespace seisoku
