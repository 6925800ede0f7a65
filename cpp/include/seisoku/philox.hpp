#pragma once
// Philox4x32-10 counter-based generator (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011) and the transforms from its bits to uniform, normal and Bernoulli
// values. Compiles for host and device, so a draw is the same bits on CPU and GPU.
//
// Draw layout: key = (seed low, seed high); counter = (block low, block high, offset low,
// offset high). One 128-bit block gives 4 float32 values (element i reads block i / 4,
// lane i % 4) or 2 float64 values (block i / 2). Every value depends only on
// (seed, offset, i), never on how the work is split between threads.
//
// The transcendental functions below use only +, -, *, /, sqrt and explicit fma, each
// correctly rounded on both sides, so results are identical when the compilers do not
// contract a*b+c themselves (the kernel files are built with contraction off).
#include <cmath>
#include <cstdint>

#include "seisoku/dtype.hpp"
#include "seisoku/export.hpp"

namespace seisoku {
namespace philox {

struct Block {
  std::uint32_t v[4];
};

SEISOKU_HD std::uint32_t mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  return static_cast<std::uint32_t>(p);
}

// The raw generator: 10 rounds over a 128-bit counter with a 64-bit key.
SEISOKU_HD Block philox4x32_10(Block ctr, std::uint32_t k0, std::uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, hi1;
    const std::uint32_t lo0 = mulhilo(0xD2511F53u, ctr.v[0], &hi0);
    const std::uint32_t lo1 = mulhilo(0xCD9E8D57u, ctr.v[2], &hi1);
    ctr = Block{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return ctr;
}

// The block `block` of the stream (seed, offset).
SEISOKU_HD Block draw(std::uint64_t seed, std::uint64_t offset, std::uint64_t block) {
  const Block ctr{{static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                   static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(offset >> 32)}};
  return philox4x32_10(ctr, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

SEISOKU_HD float fma_(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
SEISOKU_HD double fma_(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __fma_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// Uniform on [0, 1): 24 bits for float32.
SEISOKU_HD float to_unit_float(std::uint32_t u) { return static_cast<float>(u >> 8) * 5.9604644775390625e-8f; }
// Uniform on (0, 1]: never zero, for logarithms.
SEISOKU_HD float to_open_unit_float(std::uint32_t u) { return static_cast<float>((u >> 8) + 1u) * 5.9604644775390625e-8f; }
// Uniform on [0, 1): 53 bits for float64 from two 32-bit words.
SEISOKU_HD double to_unit_double(std::uint32_t a, std::uint32_t b) {
  const std::uint64_t m = (static_cast<std::uint64_t>(a >> 5) << 26) | (b >> 6);
  return static_cast<double>(m) * 1.1102230246251565e-16;  // 2^-53
}
SEISOKU_HD double to_open_unit_double(std::uint32_t a, std::uint32_t b) {
  const std::uint64_t m = (static_cast<std::uint64_t>(a >> 5) << 26) | (b >> 6);
  return static_cast<double>(m + 1u) * 1.1102230246251565e-16;
}

// x = m * 2^e with m in [sqrt(1/2), sqrt(2)); x must be positive and normal.
SEISOKU_HD float split_exponent(float x, int* e) {
  const std::uint32_t b = float_bits(x);
  *e = static_cast<int>(b >> 23) - 127;
  float m = bits_float((b & 0x7fffffu) | 0x3f800000u);
  if (m > 1.41421356f) {
    m *= 0.5f;
    *e += 1;
  }
  return m;
}
SEISOKU_HD double split_exponent(double x, int* e) {
  std::uint64_t b;
  std::memcpy(&b, &x, 8);
  *e = static_cast<int>(b >> 52) - 1023;
  b = (b & 0xfffffffffffffull) | 0x3ff0000000000000ull;
  double m;
  std::memcpy(&m, &b, 8);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    *e += 1;
  }
  return m;
}

// Natural logarithm of a positive normal x: log(m) = 2 atanh(s), s = (m - 1) / (m + 1).
template <class T>
SEISOKU_HD T log_positive(T x) {
  int e;
  const T m = split_exponent(x, &e);
  const T f = m - T(1);
  const T s = f / (T(2) + f);
  const T z = s * s;  // <= 0.0295
  T p = T(2.0 / 21);
  p = fma_(p, z, T(2.0 / 19));
  p = fma_(p, z, T(2.0 / 17));
  p = fma_(p, z, T(2.0 / 15));
  p = fma_(p, z, T(2.0 / 13));
  p = fma_(p, z, T(2.0 / 11));
  p = fma_(p, z, T(2.0 / 9));
  p = fma_(p, z, T(2.0 / 7));
  p = fma_(p, z, T(2.0 / 5));
  p = fma_(p, z, T(2.0 / 3));
  const T logm = fma_(s * z, p, T(2) * s);
  const T ln2_hi = T(0.693145751953125);           // exact in float: 11 significant bits
  const T ln2_lo = T(1.4286068203094172321e-06);   // ln 2 - ln2_hi
  return fma_(T(e), ln2_hi, fma_(T(e), ln2_lo, logm));
}

// sin and cos of a in [0, pi/4] by Taylor polynomials (error below 2^-53 at the end).
template <class T>
SEISOKU_HD void sincos_small(T a, T* s, T* c) {
  const T z = a * a;
  T ps = T(-1.0 / 1307674368000.0);  // -1/15!
  ps = fma_(ps, z, T(1.0 / 6227020800.0));
  ps = fma_(ps, z, T(-1.0 / 39916800.0));
  ps = fma_(ps, z, T(1.0 / 362880.0));
  ps = fma_(ps, z, T(-1.0 / 5040.0));
  ps = fma_(ps, z, T(1.0 / 120.0));
  ps = fma_(ps, z, T(-1.0 / 6.0));
  *s = fma_(a * z, ps, a);
  T pc = T(1.0 / 20922789888000.0);  // 1/16!
  pc = fma_(pc, z, T(-1.0 / 87178291200.0));
  pc = fma_(pc, z, T(1.0 / 479001600.0));
  pc = fma_(pc, z, T(-1.0 / 3628800.0));
  pc = fma_(pc, z, T(1.0 / 40320.0));
  pc = fma_(pc, z, T(-1.0 / 720.0));
  pc = fma_(pc, z, T(1.0 / 24.0));
  pc = fma_(pc, z, T(-0.5));
  *c = fma_(z, pc, T(1));
}

// sin(2 pi t) and cos(2 pi t) for t in [0, 1) with exact reduction to [0, pi/4].
template <class T>
SEISOKU_HD void sincos_2pi(T t, T* s, T* c) {
  const T t4 = t * T(4);  // exact
  const int q = static_cast<int>(t4);
  T r = t4 - static_cast<T>(q);  // exact, in [0, 1)
  const bool upper = r > T(0.5);
  if (upper) r = T(1) - r;  // exact
  T sa, ca;
  sincos_small(r * T(1.5707963267948966), &sa, &ca);
  if (upper) {
    const T tmp = sa;
    sa = ca;
    ca = tmp;
  }
  switch (q & 3) {
    case 0: *s = sa; *c = ca; break;
    case 1: *s = ca; *c = -sa; break;
    case 2: *s = -sa; *c = -ca; break;
    default: *s = -ca; *c = sa; break;
  }
}

// Box-Muller: two uniforms (u1 in (0, 1], u2 in [0, 1)) to two standard normals.
template <class T>
SEISOKU_HD void box_muller(T u1, T u2, T* n0, T* n1) {
  const T r = std::sqrt(T(-2) * log_positive(u1));
  T s, c;
  sincos_2pi(u2, &s, &c);
  *n0 = r * c;
  *n1 = r * s;
}

// The largest value below `high` (toward `low`), the top of a half-open [low, high) draw;
// `high` itself when the interval is empty.
template <class T>
inline T below(T high, T low) {
  return high > low ? std::nextafter(high, low) : high;
}

// Bernoulli threshold: a 32-bit word u is a success when u < threshold, p in [0, 1].
inline std::uint64_t bernoulli_threshold(double p) {
  return static_cast<std::uint64_t>(std::ldexp(p, 32));
}

}  // namespace philox
}  // namespace seisoku
