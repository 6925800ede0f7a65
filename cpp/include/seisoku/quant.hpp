#pragma once
// Fixed-point quantization. A format Qm.n has m integer bits (the sign bit included, m >= 1)
// and n fraction bits (n >= 0), m + n = 8, 16 or 32; a value is stored as the signed integer
// code c of that width (int8, int16, int32) and represents c * 2^-n. The representable values
// run from -2^(m-1) to 2^(m-1) - 2^-n in steps of 2^-n. Example (Q8.8, truncated): the float
// 0.12492940522023 becomes the code 31 = 0000 0000 . 0001 1111, i.e. 0.12109375.
//
// The code of x is round(x * 2^n), clamped to [-2^(m+n-1), 2^(m+n-1) - 1]. x * 2^n is exact in
// the input's dtype (a power-of-two scaling; it overflows only where the code saturates
// anyway), and so is every rounding below, so a code depends only on x, never on the device or
// the thread count:
//   truncate    floor(x * 2^n): toward -inf, the two's-complement bits of x cut after bit n
//   nearest     to the nearest integer, ties to even
//   stochastic  floor(x * 2^n + u), u uniform in [0, 1) from the Philox stream (seed, offset)
//               as seisoku::uniform draws it: element i of a float32 x takes the 24-bit
//               to_unit_float of word i (word i % 4 of block i / 4), element i of a float64 x
//               the 53-bit to_unit_double of words 2i, 2i + 1 (block i / 2). Rounding up has
//               probability frac(x * 2^n) cut to a multiple of 2^-24 (float32) or 2^-53
//               (float64), so the mean code is x * 2^n within that resolution (unbiased).
#include <cstdint>
#include <string>

#include "seisoku/tensor.hpp"

namespace seisoku {

enum class Rounding { truncate, nearest, stochastic };

SEISOKU_API const char* rounding_name(Rounding rounding);  // "truncate", "nearest", "stochastic"
// The rounding of a name; std::invalid_argument naming the value otherwise.
SEISOKU_API Rounding rounding_from_name(const std::string& name);

// The code dtype of the format Q(int_bits).(frac_bits): int8, int16 or int32 for 8, 16 or 32
// bits; std::invalid_argument naming the bad argument otherwise (int_bits < 1, frac_bits < 0, or
// another width).
SEISOKU_API DType fixed_point_dtype(int int_bits, int frac_bits);

// out = the codes of x (float32 or float64) in the format Q(int_bits).(frac_bits); out has x's
// shape and device and dtype fixed_point_dtype(int_bits, frac_bits). seed and offset select the
// stream of stochastic rounding (unused otherwise). A NaN or infinite element of x is an error
// (std::invalid_argument naming its index); out's contents are then unspecified.
SEISOKU_API void quantize_fixed(const Tensor& x, const Tensor& out, int int_bits, int frac_bits, Rounding rounding,
                                std::uint64_t seed = 0, std::uint64_t offset = 0);

// out = codes * 2^-frac_bits, codes int8, int16 or int32, out float32 or float64 of the same
// shape and device. Exact, except that an int32 code with more than 24 significant bits rounds
// (to nearest even) in float32.
SEISOKU_API void dequantize_fixed(const Tensor& codes, const Tensor& out, int frac_bits);

}  // namespace seisoku
