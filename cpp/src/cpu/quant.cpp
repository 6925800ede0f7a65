// CPU kernels of fixed-point quantization (seisoku/quant.hpp), per element the math of
// kernels/quant_math.hpp.
//
// quantize_fixed: one pass over x writes the codes and ORs a flag for non-finite elements into a
// per-range reduction (the loops vectorize: floor/rint, compares and selects); only when a flag is
// set is x scanned again for the first such index. Stochastic rounding takes the words of the
// Philox stream from the vectorized philox_lanes (masked.hpp): float32 element i word i, float64
// element i words 2i and 2i + 1 (the layout of seisoku::uniform), so the codes do not depend on
// the thread count. dequantize_fixed: one multiply per element.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "core/dispatch.hpp"
#include "kernels/quant.hpp"
#include "kernels/quant_math.hpp"
#include "masked.hpp"
#include "parallel.hpp"
#include "seisoku/philox.hpp"

namespace seisoku::cpu {
namespace {

template <class T>
std::int64_t first_nonfinite(const T* x, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    if (!detail::is_finite_(x[i])) return i;
  return -1;
}

// codes[i] = code(x[i]) for a deterministic rounding; returns whether some x[i] is not finite.
template <class C, class T, class Round>
bool quantize_range(const T* x, C* codes, std::int64_t count, Round round) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (std::int64_t i = 0; i < count; ++i) {
    const T v = x[i];
    bad |= detail::is_finite_(v) ? 0 : 1;
    codes[i] = round(v);
  }
  return bad != 0;
}

}  // namespace

std::int64_t quantize_fixed(const Tensor& x, const Tensor& out, int frac_bits, Rounding rounding, std::uint64_t seed,
                            std::uint64_t offset) {
  const std::int64_t n = x.numel();
  std::atomic<bool> any_bad{false};
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    detail::dispatch_code(out.dtype(), [&](auto code_tag) {
      using C = decltype(code_tag);
      const T* xs = x.data_as<T>();
      C* codes = out.data_as<C>();
      const T scale = detail::pow2<T>(frac_bits);
      if (rounding == Rounding::stochastic) {
        if constexpr (std::is_same_v<T, float>) {
          for_word_groups(n, seed, offset, [&](std::int64_t first, std::int64_t count, const std::uint32_t* w) {
            const float* src = xs + first;
            C* dst = codes + first;
            int bad = 0;
#pragma omp simd reduction(| : bad)
            for (std::int64_t e = 0; e < count; ++e) {
              const float v = src[e];
              bad |= detail::is_finite_(v) ? 0 : 1;
              dst[e] = detail::quantize_stochastic<C>(v, scale, philox::to_unit_float(w[e]));
            }
            if (bad) any_bad.store(true, std::memory_order_relaxed);
          });
        } else {
          // Two words per element: a range of words starts and ends at even indices.
          for_word_groups(2 * n, seed, offset, [&](std::int64_t first, std::int64_t count, const std::uint32_t* w) {
            const double* src = xs + first / 2;
            C* dst = codes + first / 2;
            int bad = 0;
            for (std::int64_t e = 0; e < count / 2; ++e) {
              const double v = src[e];
              bad |= detail::is_finite_(v) ? 0 : 1;
              dst[e] = detail::quantize_stochastic<C>(v, scale, philox::to_unit_double(w[2 * e], w[2 * e + 1]));
            }
            if (bad) any_bad.store(true, std::memory_order_relaxed);
          });
        }
      } else {
        parallel_for(n, [&](std::int64_t i0, std::int64_t i1) {
          const bool bad = rounding == Rounding::truncate
                               ? quantize_range(xs + i0, codes + i0, i1 - i0,
                                                [scale](T v) { return detail::quantize_truncate<C>(v, scale); })
                               : quantize_range(xs + i0, codes + i0, i1 - i0,
                                                [scale](T v) { return detail::quantize_nearest<C>(v, scale); });
          if (bad) any_bad.store(true, std::memory_order_relaxed);
        });
      }
    });
  });
  if (!any_bad.load()) return -1;
  return detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    return first_nonfinite(x.data_as<T>(), n);
  });
}

void dequantize_fixed(const Tensor& codes, const Tensor& out, int frac_bits) {
  detail::dispatch_code(codes.dtype(), [&](auto code_tag) {
    using C = decltype(code_tag);
    detail::dispatch_float(out.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const C* c = codes.data_as<C>();
      T* o = out.data_as<T>();
      const T inv_scale = T(1) / detail::pow2<T>(frac_bits);
      parallel_for(codes.numel(), [=](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
        for (std::int64_t i = i0; i < i1; ++i) o[i] = detail::dequantize<T>(c[i], inv_scale);
      });
    });
  });
}

}  // namespace seisoku::cpu
