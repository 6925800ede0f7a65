#pragma once
// Dtype dispatch and value conversion shared by the CPU kernels and the CUDA kernels.
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "seisoku/dtype.hpp"

namespace seisoku::detail {

// Calls f(T{}) with T the C++ type of dtype, for float32 and float64.
template <class F>
decltype(auto) dispatch_float(DType dtype, F&& f) {
  switch (dtype) {
    case DType::float32: return f(float{});
    case DType::float64: return f(double{});
    default: throw std::invalid_argument(std::string("[dispatch] unsupported dtype ") + dtype_name(dtype));
  }
}

// Calls f(T{}) with T the C++ storage type of any dtype.
template <class F>
decltype(auto) dispatch_all(DType dtype, F&& f) {
  switch (dtype) {
    case DType::float32: return f(float{});
    case DType::float64: return f(double{});
    case DType::float16: return f(Half{});
    case DType::bfloat16: return f(BFloat16{});
    case DType::int8: return f(std::int8_t{});
    case DType::uint8: return f(std::uint8_t{});
    case DType::int16: return f(std::int16_t{});
    case DType::int32: return f(std::int32_t{});
    case DType::int64: return f(std::int64_t{});
  }
  throw std::invalid_argument("[dispatch] unknown dtype");
}

template <class T>
inline constexpr bool is_16bit_float_v = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// Value of any storage type as float (16-bit floats) or as itself.
template <class T>
SEISOKU_HD auto widen(T v) {
  if constexpr (std::is_same_v<T, Half>) return half_to_float(v);
  else if constexpr (std::is_same_v<T, BFloat16>) return bfloat16_to_float(v);
  else return v;
}

// An integer as float32 rounded to odd (exact below 2^24), so that rounding it once more to
// 16 bits equals one correct rounding of the integer.
template <class S>
SEISOKU_HD float int_to_float_round_odd(S v) {
  if constexpr (sizeof(S) <= 4) {
    return double_to_float_round_odd(static_cast<double>(v));  // exact in double
  } else {
    const bool neg = v < 0;
    std::uint64_t u = neg ? 0ull - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    int shift = 0;
    while ((u >> shift) >= (1ull << 53)) ++shift;
    std::uint64_t keep = u >> shift;
    if (shift > 0 && (u & ((1ull << shift) - 1ull)) != 0) keep |= 1ull;  // sticky bit
    double d = static_cast<double>(keep);  // exact: 53 bits
    for (int i = 0; i < shift; ++i) d *= 2.0;
    return double_to_float_round_odd(neg ? -d : d);
  }
}

// Converts one value between storage types: floats to ints truncate toward zero and
// saturate, NaN becomes 0; ints to ints wrap like C++ (and NumPy); to 16-bit floats round
// to nearest even in one rounding.
template <class D, class S>
SEISOKU_HD D convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (is_16bit_float_v<D>) {
    float f;
    if constexpr (std::is_same_v<S, float> || is_16bit_float_v<S>) f = widen(v);
    else if constexpr (std::is_same_v<S, double>) f = double_to_float_round_odd(v);
    else f = int_to_float_round_odd(v);
    if constexpr (std::is_same_v<D, Half>) return float_to_half(f);
    else return float_to_bfloat16(f);
  } else if constexpr (std::is_floating_point_v<D>) {
    return static_cast<D>(widen(v));
  } else if constexpr (std::is_floating_point_v<S> || is_16bit_float_v<S>) {
    const double x = static_cast<double>(widen(v));
    if (x != x) return D(0);
    constexpr double lo = static_cast<double>(std::numeric_limits<D>::lowest());
    constexpr double hi = static_cast<double>(std::numeric_limits<D>::max());
    if (x <= lo) return std::numeric_limits<D>::lowest();
    if (x >= hi) return std::numeric_limits<D>::max();
    return static_cast<D>(x);
  } else {
    return static_cast<D>(v);
  }
}

// -1, 0 or 1; NaN stays NaN.
template <class T>
SEISOKU_HD T sign(T x) {
  return x > T(0) ? T(1) : (x < T(0) ? T(-1) : (x == T(0) ? T(0) : x));
}

}  // namespace seisoku::detail
