#pragma once
// Fixed-point math shared by the CPU kernels (cpp/src/cpu/quant.cpp) and their CUDA twins
// (cuda/quant.cu), so that a code is computed by one formula on both devices: the kernels own
// the loops and the random draws, these functions the per-element work (see seisoku/quant.hpp).
// Every step is exact in the input dtype T (float or double): the scaling by 2^n, floor and
// rint, the comparisons of the stochastic rounding and the clamping at powers of two.
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "seisoku/dtype.hpp"
#include "seisoku/export.hpp"
#include "seisoku/quant.hpp"

namespace seisoku::detail {

// Calls f(C{}) with C the code type of an int8, int16 or int32 dtype.
template <class F>
decltype(auto) dispatch_code(DType dtype, F&& f) {
  switch (dtype) {
    case DType::int8: return f(std::int8_t{});
    case DType::int16: return f(std::int16_t{});
    case DType::int32: return f(std::int32_t{});
    default: throw std::invalid_argument(std::string("[dispatch] unsupported code dtype ") + dtype_name(dtype));
  }
}

template <class T>
SEISOKU_HD T floor_(T x) {
#if defined(__CUDA_ARCH__)
  return floor(x);
#else
  return std::floor(x);
#endif
}

// Round to nearest integer, ties to even (the default rounding mode on both devices).
template <class T>
SEISOKU_HD T rint_(T x) {
#if defined(__CUDA_ARCH__)
  return rint(x);
#else
  return std::rint(x);
#endif
}

// Whether x is neither NaN nor infinite (a form that vectorizes).
template <class T>
SEISOKU_HD bool is_finite_(T x) {
  const T a = x < T(0) ? -x : x;
  return a <= std::numeric_limits<T>::max();
}

// 2^n as T, exact for 0 <= n <= 62.
template <class T>
SEISOKU_HD T pow2(int n) {
  return static_cast<T>(std::uint64_t{1} << n);
}

// The code of an integer-valued r: r clamped to the range of C. The bounds are compared as
// -2^(b-1) and 2^(b-1), both exact in T (2^31 - 1 is not a float32), so the clamp is exact.
template <class C, class T>
SEISOKU_HD C saturate_code(T r) {
  constexpr T top = static_cast<T>(std::uint64_t{1} << (8 * sizeof(C) - 1));
  if constexpr (sizeof(C) < 4) {
    // Both ends are exact in T: clamp there, then one narrowing conversion (vectorizes).
    const T c = r < -top ? -top : (r > top - T(1) ? top - T(1) : r);
    return static_cast<C>(static_cast<std::int32_t>(c));
  } else {
    return r >= top ? std::numeric_limits<C>::max() : (r < -top ? std::numeric_limits<C>::min() : static_cast<C>(r));
  }
}

// Code of x with rounding "truncate": floor(x * 2^n). scale = 2^n.
template <class C, class T>
SEISOKU_HD C quantize_truncate(T x, T scale) {
  return saturate_code<C>(floor_(x * scale));
}

// Code of x with rounding "nearest": x * 2^n to the nearest integer, ties to even.
template <class C, class T>
SEISOKU_HD C quantize_nearest(T x, T scale) {
  return saturate_code<C>(rint_(x * scale));
}

// Code of x with rounding "stochastic": floor(s + u), s = x * 2^n, u in [0, 1) a multiple of
// 2^-24 (float) or 2^-53 (double). With f = floor(s), floor(s + u) = f + 1 iff s is not an integer
// and s - f >= 1 - u, i.e. u >= (f + 1) - s. Each form is exact where it is used: 1 - u always,
// s - f for s >= 0 and (f + 1) - s for s < 0 (Sterbenz), and f + 1 for a non-integer s.
template <class C, class T>
SEISOKU_HD C quantize_stochastic(T x, T scale, T u) {
  const T s = x * scale;
  const T f = floor_(s);
  const bool up = s != f && (s >= T(0) ? s - f >= T(1) - u : u >= (f + T(1)) - s);
  return saturate_code<C>(up ? f + T(1) : f);
}

// Value of a code: c * 2^-n (inv_scale = 2^-n); exact when c fits T's significand.
template <class T, class C>
SEISOKU_HD T dequantize(C c, T inv_scale) {
  return static_cast<T>(c) * inv_scale;
}

}  // namespace seisoku::detail
