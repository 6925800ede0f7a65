#pragma once
// One SIMD register of the build's widest vector unit (GCC/Clang vector extensions), the
// operations on it that the CPU product kernels share (conv.cpp, sparse.cpp), and a blocked
// transpose (sparse.cpp, augment.cpp).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX__)
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

#if defined(__AVX__)
// The 8 x 8 (float) or 4 x 4 (double) block at in (row stride ld) transposed to out (stride ldo).
inline void transpose_block(const float* in, std::int64_t ld, float* out, std::int64_t ldo) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(in + i * ld);
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(out + i * ldo, _mm256_permute2f128_ps(u[i], u[4 + i], 0x20));
    _mm256_storeu_ps(out + (4 + i) * ldo, _mm256_permute2f128_ps(u[i], u[4 + i], 0x31));
  }
}

inline void transpose_block(const double* in, std::int64_t ld, double* out, std::int64_t ldo) {
  __m256d r[4];
  for (int i = 0; i < 4; ++i) r[i] = _mm256_loadu_pd(in + i * ld);
  const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
  const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
  _mm256_storeu_pd(out + 0 * ldo, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(out + 1 * ldo, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(out + 2 * ldo, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(out + 3 * ldo, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#endif

// dst[c * ld_dst + r] = src[r * ld_src + c] for r < rows, c < cols: src's rows become dst's
// columns; whole 8 x 8 (4 x 4) blocks with AVX shuffles where the build has AVX.
template <class T>
void transpose(const T* src, std::int64_t ld_src, std::int64_t rows, std::int64_t cols, T* dst,
               std::int64_t ld_dst) {
  std::int64_t r0 = 0;
#if defined(__AVX__)
  constexpr std::int64_t L = 32 / sizeof(T);
  const std::int64_t cb = cols / L * L;
  for (; r0 + L <= rows; r0 += L) {
    for (std::int64_t c = 0; c < cb; c += L) transpose_block(src + r0 * ld_src + c, ld_src, dst + c * ld_dst + r0, ld_dst);
    for (std::int64_t c = cb; c < cols; ++c)
      for (std::int64_t r = r0; r < r0 + L; ++r) dst[c * ld_dst + r] = src[r * ld_src + c];
  }
#endif
  for (std::int64_t c = 0; c < cols; ++c)
    for (std::int64_t r = r0; r < rows; ++r) dst[c * ld_dst + r] = src[r * ld_src + c];
}

}  // namespace seisoku::cpu
