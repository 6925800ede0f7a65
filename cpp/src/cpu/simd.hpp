#pragma once
// One SIMD register of the build's widest vector unit (GCC/Clang vector extensions) and the
// operations on it that the CPU product kernels share (conv.cpp, sparse.cpp).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__FMA__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

// One SIMD register of T (GCC/Clang vector extension) and a fused multiply-add on it where
// the target has one.
template <class T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(kVectorBytes)));
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(kVectorBytes)));
};

template <class V>
inline V vfma(V a, V b, V c) {
#if defined(__FMA__) && defined(__AVX512F__)
  if constexpr (std::is_same_v<V, Simd<float>::V>) return _mm512_fmadd_ps(a, b, c);
  else return _mm512_fmadd_pd(a, b, c);
#elif defined(__FMA__)
  if constexpr (std::is_same_v<V, Simd<float>::V>) return _mm256_fmadd_ps(a, b, c);
  else return _mm256_fmadd_pd(a, b, c);
#else
  return a * b + c;
#endif
}

template <class V, class T>
inline V vload(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

// A vector of copies of v (x - 0 is exactly x, so this is a plain broadcast).
template <class V, class T>
inline V vsplat(T v) {
  return v - V{};
}

// Stores v at p (unaligned). v is taken by value, so that the callers' accumulators never
// have their address taken and stay in registers (GCC keeps an array whose address is taken
// in memory, storing every accumulator on each step of a loop: a third of the speed).
template <class V, class T>
inline void vstore(T* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// a * b + c on scalars with the rounding of vfma: fused where the target has FMA.
template <class T>
inline T sfma(T a, T b, T c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

}  // namespace seisoku::cpu
