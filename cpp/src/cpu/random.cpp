// CPU kernels of the random fills. Each Philox block fills 4 float32 (or 2 float64) outputs;
// blocks are independent, so threads split them freely and the bits never change. Uniform
// float32 and Bernoulli take one word per element from the vectorized philox_lanes, normal
// float32 its values from the vectorized Box-Muller of normal_lanes.hpp.
// Built with -ffp-contract=off (see CMakeLists.txt) to match the CUDA twin bit for bit.
#include <algorithm>
#include <cstdint>

#include "core/dispatch.hpp"
#include "kernels/core.hpp"
#include "masked.hpp"
#include "kernels/nn_math.hpp"
#include "normal_lanes.hpp"
#include "parallel.hpp"
#include "seisoku/philox.hpp"

namespace seisoku::cpu {
namespace {

// Calls fill_block(block, first_element, count) for every block of `per_block` elements.
template <class F>
void for_blocks(std::int64_t n, int per_block, F&& fill_block) {
  const std::int64_t blocks = (n + per_block - 1) / per_block;
  parallel_for(
      blocks,
      [&](std::int64_t b0, std::int64_t b1) {
        for (std::int64_t b = b0; b < b1; ++b) {
          const std::int64_t i = b * per_block;
          fill_block(static_cast<std::uint64_t>(b), i, static_cast<int>(std::min<std::int64_t>(per_block, n - i)));
        }
      },
      /*grain=*/kParallelGrain / 16);
}

}  // namespace

void uniform(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double low, double high) {
  if (out.dtype() == DType::float32) {
    float* z = out.data_as<float>();
    const float lo = static_cast<float>(low), width = static_cast<float>(high) - static_cast<float>(low);
    const float top = philox::below(static_cast<float>(high), lo);
    for_each_word(out.numel(), seed, offset, [=](std::int64_t i, std::uint32_t w) {
      z[i] = std::min(philox::fma_(philox::to_unit_float(w), width, lo), top);
    });
  } else {
    double* z = out.data_as<double>();
    const double lo = low, width = high - low, top = philox::below(high, low);
    for_blocks(out.numel(), 2, [=](std::uint64_t b, std::int64_t i, int cnt) {
      const philox::Block r = philox::draw(seed, offset, b);
      for (int k = 0; k < cnt; ++k)
        z[i + k] = std::min(philox::fma_(philox::to_unit_double(r.v[2 * k], r.v[2 * k + 1]), width, lo), top);
    });
  }
}

void normal(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double mean, double stddev) {
  if (out.dtype() == DType::float32) {
    float* z = out.data_as<float>();
    const float mu = static_cast<float>(mean), sd = static_cast<float>(stddev);
    for_normal_groups(out.numel(), seed, offset, [=](std::int64_t first, std::int64_t count, const float* n) {
      float* dst = z + first;
      for (std::int64_t k = 0; k < count; ++k) dst[k] = philox::fma_(n[k], sd, mu);
    });
  } else {
    double* z = out.data_as<double>();
    for_blocks(out.numel(), 2, [=](std::uint64_t b, std::int64_t i, int cnt) {
      const philox::Block r = philox::draw(seed, offset, b);
      double n[2];
      philox::box_muller(philox::to_open_unit_double(r.v[0], r.v[1]), philox::to_unit_double(r.v[2], r.v[3]), &n[0],
                         &n[1]);
      for (int k = 0; k < cnt; ++k) z[i + k] = philox::fma_(n[k], stddev, mean);
    });
  }
}

void bernoulli(const Tensor& out, std::uint64_t seed, std::uint64_t offset, std::uint64_t threshold) {
  detail::dispatch_all(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::uint8_t>) {
      T* z = out.data_as<T>();
      if (threshold > 0xFFFFFFFFull) {  // p = 1
        parallel_for(out.numel(), [=](std::int64_t i0, std::int64_t i1) { std::fill(z + i0, z + i1, T(1)); });
        return;
      }
      // Unsigned compare as a signed one on biased words (detail::keeps), so the loop vectorizes.
      const std::int32_t bound = detail::biased(static_cast<std::uint32_t>(threshold));
      for_word_groups(out.numel(), seed, offset, [=](std::int64_t first, std::int64_t count, const std::uint32_t* w) {
        T* dst = z + first;
        const std::int32_t b = bound;
#pragma omp simd
        for (std::int64_t e = 0; e < count; ++e)
          dst[e] = detail::keeps(w[e], b) ? T(1) : T(0);
      });
    }
  });
}

}  // namespace seisoku::cpu
