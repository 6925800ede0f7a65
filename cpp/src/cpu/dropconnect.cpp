// CPU kernel of DropConnect's Gaussian inference: one output per iteration, its draws and sum
// in the order of detail::dropconnect_gaussian_value (the math the CUDA twin runs), so the
// result does not depend on how the elements are split between threads.
#include "kernels/dropconnect.hpp"

#include <algorithm>

#include "core/dispatch.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {

void dropconnect_gaussian(const Tensor& mean, const Tensor& var, const Tensor& out, Activation act, double slope,
                          std::int64_t samples, std::uint64_t seed, std::uint64_t offset) {
  detail::dispatch_float(out.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* m = mean.data_as<T>();
    const T* v = var.data_as<T>();
    T* o = out.data_as<T>();
    const T s = static_cast<T>(slope);
    parallel_for(
        out.numel(),
        [&](std::int64_t i0, std::int64_t i1) {
          for (std::int64_t i = i0; i < i1; ++i)
            o[i] = detail::dropconnect_gaussian_value<T>(m[i], v[i], act, s, samples, seed, offset, i);
        },
        /*grain=*/std::max<std::int64_t>(1, kParallelGrain / (16 * samples)));
  });
}

}  // namespace seisoku::cpu
