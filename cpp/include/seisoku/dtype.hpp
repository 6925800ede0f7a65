#pragma once
// Element types, and the float16 / bfloat16 storage types with round-to-nearest-even
// conversions shared by the CPU and CUDA kernels.
#include <cstdint>
#include <cstring>
#include <string>

#include "seisoku/export.hpp"

namespace seisoku {

enum class DType : std::uint8_t { float32, float64, float16, bfloat16, int8, uint8, int16, int32, int64 };

enum class Device : std::uint8_t { cpu, cuda };

SEISOKU_API std::size_t itemsize(DType dtype);
SEISOKU_API const char* dtype_name(DType dtype);
SEISOKU_API const char* device_name(Device device);
SEISOKU_API DType dtype_from_name(const std::string& name);  // throws std::invalid_argument
SEISOKU_API bool is_floating(DType dtype);

SEISOKU_HD std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
SEISOKU_HD float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16, stored as its bits.
struct Half {
  std::uint16_t bits;
};
// bfloat16 (the top half of a float32), stored as its bits.
struct BFloat16 {
  std::uint16_t bits;
};

SEISOKU_HD float half_to_float(Half h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  const std::uint32_t exp = (h.bits >> 10) & 0x1fu;
  std::uint32_t mant = h.bits & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return bits_float(sign);
  // subnormal: value = mant * 2^-24, exact in float32
  const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

SEISOKU_HD Half float_to_half(float f) {
  const std::uint32_t x = float_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {  // inf or nan (nan keeps a quiet payload bit)
    return Half{static_cast<std::uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u))};
  }
  if (ax >= 0x477ff000u) return Half{static_cast<std::uint16_t>(sign | 0x7c00u)};  // rounds to inf
  if (ax < 0x38800000u) {  // below the smallest normal half: round to a multiple of 2^-24
    if (ax < 0x33000000u) return Half{sign};  // below half of the smallest subnormal
    const std::uint32_t e = ax >> 23;
    const std::uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - e;  // 14..24 bits dropped to reach 2^-24 units
    std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) ++q;
    return Half{static_cast<std::uint16_t>(sign | q)};
  }
  // normal: rebias the exponent and round 13 mantissa bits to nearest even
  std::uint32_t r = ax - 0x38000000u;
  r += 0xfffu + ((r >> 13) & 1u);
  return Half{static_cast<std::uint16_t>(sign | (r >> 13))};
}

SEISOKU_HD float bfloat16_to_float(BFloat16 b) { return bits_float(static_cast<std::uint32_t>(b.bits) << 16); }

SEISOKU_HD BFloat16 float_to_bfloat16(float f) {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return BFloat16{static_cast<std::uint16_t>((x >> 16) | 0x40u)};  // quiet nan
  const std::uint32_t r = x + 0x7fffu + ((x >> 16) & 1u);
  return BFloat16{static_cast<std::uint16_t>(r >> 16)};
}

// double -> float rounded to odd: a second rounding to 16 bits then equals one direct
// rounding of the double (float keeps more than 2 extra bits beyond half and bfloat16).
SEISOKU_HD float double_to_float_round_odd(double d) {
  float f = static_cast<float>(d);
  if (static_cast<double>(f) != d && f == f) {
    std::uint32_t u = float_bits(f);
    const double af = f < 0 ? -static_cast<double>(f) : static_cast<double>(f);
    const double ad = d < 0 ? -d : d;
    if (af > ad) --u;  // rounded away from zero: step back toward zero (truncate)
    u |= 1u;           // sticky bit
    f = bits_float(u);
  }
  return f;
}

}  // namespace seisoku
