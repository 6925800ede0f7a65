// CPU kernels of the int8 family (seisoku/int8.hpp).
//
// int8_gemm: the weights come packed by Int8Weight in blocks of 16 output rows x 4 inputs (64
// bytes: row j's 4 codes at 4j), block after block along the inputs, so one 512-bit load (or two
// 256-bit loads) brings 16 outputs' next 4 codes. A micro-kernel keeps an R rows x NB blocks tile
// of int32 accumulators in registers and, per group of 4 inputs, broadcasts each row's 4 codes:
//   avx512_vnni  vpdpbusd(acc, x + 128 (u8), w (s8)); the epilogue adds -128 * row sum of w.
//                vpdpbusd adds the four 16-bit products into 32 bits without saturation.
//   avx2         vpmaddubsw(|x| (u8), sign(x) * w (s8)) then vpmaddwd with ones: every pair sum
//                is at most 2 * 127 * 127 < 2^15, so the 16-bit step never saturates (the
//                x + 128 shift would: 255 * 127 * 2 > 2^15).
//   scalar       the int32 dot product over the row-major codes (the reference).
// The final partial group of 4 inputs is read through a zero-filled word (zero codes, zero pads).
// Tasks are (R-row tile, NB-block group) pairs over parallel_tasks; each writes its own outputs,
// so results do not depend on the thread count. The epilogue is kernels/int8_math.hpp's formula,
// written with separate multiplies and adds (no fma) in the vector paths.
#include <immintrin.h>

// GCC 12 warns that the placeholder inside _mm512_cvtepi32_ps (_mm512_undefined_ps) may be used
// uninitialized; it is a write-only merge source, never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/int8.hpp"
#include "kernels/int8_math.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {
namespace {

// What the micro-kernels need, gathered once per call.
struct Gemm {
  const std::int8_t* x;        // (N, K) codes, row stride K (scalar path)
  const std::int8_t* xp;       // (N, Kp) codes padded with zeros (avx2), or + 128 as u8 (vnni)
  const std::int8_t* codes;    // (O, K) row-major (scalar path)
  const std::int8_t* packed;   // blocks of 64 bytes
  const std::int32_t* corr;    // (O padded to 16) -128 * row sums
  const float* mult;           // (O padded to 16) x_scale * w_scale[o]
  const float* bias;           // (O padded to 16), zeros without a bias
  float* y;                    // (N, O) float32, or
  std::int32_t* acc;           // (N, O) int32 when acc_only, or
  std::int8_t* y8;             // (N, O) int8 codes of y at the output scale (out_inv = 1 / it)
  std::int64_t N, K, O, G;     // G = groups of 4 inputs (K padded to 4 / 4)
  bool relu;
  float out_inv;
};

// Four codes read as one int32 (a type that may alias the bytes).
typedef std::int32_t __attribute__((may_alias, aligned(1))) word_t;
inline std::int32_t word_at(const std::int8_t* p) { return *reinterpret_cast<const word_t*>(p); }

void scalar_rows(const Gemm& p, std::int64_t r0, std::int64_t r1, std::int64_t o0, std::int64_t o1) {
  for (std::int64_t n = r0; n < r1; ++n) {
    const std::int8_t* xr = p.x + n * p.K;
    for (std::int64_t o = o0; o < o1; ++o) {
      const std::int8_t* wr = p.codes + o * p.K;
      std::int32_t s = 0;
      for (std::int64_t k = 0; k < p.K; ++k) s += static_cast<std::int32_t>(xr[k]) * wr[k];
      if (p.acc) p.acc[n * p.O + o] = s;
      else if (p.y8) p.y8[n * p.O + o] = detail::int8_code(detail::int8_epilogue(s, p.mult[o], p.bias[o], p.relu), p.out_inv);
      else p.y[n * p.O + o] = detail::int8_epilogue(s, p.mult[o], p.bias[o], p.relu);
    }
  }
}

// ---- AVX-512 VNNI ----

#define SEISOKU_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

template <int R, int NB>
SEISOKU_VNNI void vnni_tile(const Gemm& p, std::int64_t r0, std::int64_t b0) {
  __m512i acc[R][NB];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_setzero_si512();
  const std::int64_t G = p.G, Kp = 4 * G;
  const std::int8_t* wb = p.packed + b0 * G * 64;
  const std::int8_t* xb0 = p.xp + r0 * Kp;
  if constexpr (R == 4 && NB == 4) {
    // The full tile written out, so that the 16 accumulators stay in registers.
    __m512i c00 = acc[0][0], c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    const std::int8_t *x0 = xb0, *x1 = xb0 + Kp, *x2 = xb0 + 2 * Kp, *x3 = xb0 + 3 * Kp;
    const std::int8_t *w0p = wb, *w1p = wb + G * 64, *w2p = wb + 2 * G * 64, *w3p = wb + 3 * G * 64;
    for (std::int64_t g = 0; g < G; ++g) {
      const __m512i w0 = _mm512_loadu_si512(w0p + g * 64), w1 = _mm512_loadu_si512(w1p + g * 64);
      const __m512i w2 = _mm512_loadu_si512(w2p + g * 64), w3 = _mm512_loadu_si512(w3p + g * 64);
      __m512i x = _mm512_set1_epi32(word_at(x0 + 4 * g));
      c00 = _mm512_dpbusd_epi32(c00, x, w0), c01 = _mm512_dpbusd_epi32(c01, x, w1);
      c02 = _mm512_dpbusd_epi32(c02, x, w2), c03 = _mm512_dpbusd_epi32(c03, x, w3);
      x = _mm512_set1_epi32(word_at(x1 + 4 * g));
      c10 = _mm512_dpbusd_epi32(c10, x, w0), c11 = _mm512_dpbusd_epi32(c11, x, w1);
      c12 = _mm512_dpbusd_epi32(c12, x, w2), c13 = _mm512_dpbusd_epi32(c13, x, w3);
      x = _mm512_set1_epi32(word_at(x2 + 4 * g));
      c20 = _mm512_dpbusd_epi32(c20, x, w0), c21 = _mm512_dpbusd_epi32(c21, x, w1);
      c22 = _mm512_dpbusd_epi32(c22, x, w2), c23 = _mm512_dpbusd_epi32(c23, x, w3);
      x = _mm512_set1_epi32(word_at(x3 + 4 * g));
      c30 = _mm512_dpbusd_epi32(c30, x, w0), c31 = _mm512_dpbusd_epi32(c31, x, w1);
      c32 = _mm512_dpbusd_epi32(c32, x, w2), c33 = _mm512_dpbusd_epi32(c33, x, w3);
    }
    acc[0][0] = c00, acc[0][1] = c01, acc[0][2] = c02, acc[0][3] = c03;
    acc[1][0] = c10, acc[1][1] = c11, acc[1][2] = c12, acc[1][3] = c13;
    acc[2][0] = c20, acc[2][1] = c21, acc[2][2] = c22, acc[2][3] = c23;
    acc[3][0] = c30, acc[3][1] = c31, acc[3][2] = c32, acc[3][3] = c33;
  } else if constexpr (R == 8 && NB == 2) {
    // 8 rows x 32 outputs, written out likewise: the two weight vectors of a group serve eight
    // rows, and a 32-output panel of the weights (G * 128 bytes) stays in L1 while the row
    // tiles go past it (the tasks run row tiles innermost).
    const std::int8_t *w0p = wb, *w1p = wb + G * 64;
#define SEISOKU_VNNI_ROW(r)                                                                   \
  __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = c##r##0;                                \
  const std::int8_t* x##r = xb0 + (r) * Kp;
    SEISOKU_VNNI_ROW(0) SEISOKU_VNNI_ROW(1) SEISOKU_VNNI_ROW(2) SEISOKU_VNNI_ROW(3)
    SEISOKU_VNNI_ROW(4) SEISOKU_VNNI_ROW(5) SEISOKU_VNNI_ROW(6) SEISOKU_VNNI_ROW(7)
#undef SEISOKU_VNNI_ROW
    for (std::int64_t g = 0; g < G; ++g) {
      const __m512i w0 = _mm512_loadu_si512(w0p + g * 64), w1 = _mm512_loadu_si512(w1p + g * 64);
#define SEISOKU_VNNI_ROW(r)                                      \
  {                                                              \
    const __m512i x = _mm512_set1_epi32(word_at(x##r + 4 * g));  \
    c##r##0 = _mm512_dpbusd_epi32(c##r##0, x, w0);               \
    c##r##1 = _mm512_dpbusd_epi32(c##r##1, x, w1);               \
  }
      SEISOKU_VNNI_ROW(0) SEISOKU_VNNI_ROW(1) SEISOKU_VNNI_ROW(2) SEISOKU_VNNI_ROW(3)
      SEISOKU_VNNI_ROW(4) SEISOKU_VNNI_ROW(5) SEISOKU_VNNI_ROW(6) SEISOKU_VNNI_ROW(7)
#undef SEISOKU_VNNI_ROW
    }
    acc[0][0] = c00, acc[0][1] = c01, acc[1][0] = c10, acc[1][1] = c11;
    acc[2][0] = c20, acc[2][1] = c21, acc[3][0] = c30, acc[3][1] = c31;
    acc[4][0] = c40, acc[4][1] = c41, acc[5][0] = c50, acc[5][1] = c51;
    acc[6][0] = c60, acc[6][1] = c61, acc[7][0] = c70, acc[7][1] = c71;
  } else {
  for (std::int64_t g = 0; g < G; ++g) {
    __m512i w[NB];
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) w[j] = _mm512_loadu_si512(wb + (j * G + g) * 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i xb = _mm512_set1_epi32(word_at(xb0 + r * Kp + 4 * g));
#pragma GCC unroll 4
      for (int j = 0; j < NB; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], xb, w[j]);
    }
  }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int j = 0; j < NB; ++j) {
    const std::int64_t o = (b0 + j) * 16;
    const std::int64_t left = std::min<std::int64_t>(16, p.O - o);
    const __mmask16 mask = static_cast<__mmask16>(left >= 16 ? 0xffff : ((1u << left) - 1));
    const __m512i corr = _mm512_loadu_si512(p.corr + o);
    const __m512 m = _mm512_loadu_ps(p.mult + o);
    const __m512 b = _mm512_loadu_ps(p.bias + o);
    for (int r = 0; r < R; ++r) {
      const __m512i s = _mm512_add_epi32(acc[r][j], corr);
      const std::int64_t at = (r0 + r) * p.O + o;
      if (p.acc) {
        _mm512_mask_storeu_epi32(p.acc + at, mask, s);
      } else {
        __m512 yv = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), m), b);
        if (p.relu) yv = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(yv, zero, _CMP_GT_OQ), zero, yv);
        if (p.y8) {  // int8_code: rint(y * out_inv) clamped to [-127, 127]
          __m512 c = _mm512_roundscale_ps(_mm512_mul_ps(yv, _mm512_set1_ps(p.out_inv)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          c = _mm512_min_ps(_mm512_max_ps(c, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
          _mm_mask_storeu_epi8(p.y8 + at, mask, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(c)));
        } else {
          _mm512_mask_storeu_ps(p.y + at, mask, yv);
        }
      }
    }
  }
}

// ---- AVX2 ----

#define SEISOKU_AVX2 __attribute__((target("avx2")))

template <int R, int NB>
SEISOKU_AVX2 void avx2_tile(const Gemm& p, std::int64_t r0, std::int64_t b0) {
  __m256i acc[R][2 * NB];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < 2 * NB; ++j) acc[r][j] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  const std::int64_t G = p.G, Kp = 4 * G;
  const std::int8_t* wb = p.packed + b0 * G * 64;
  const std::int8_t* xb0 = p.xp + r0 * Kp;
  for (std::int64_t g = 0; g < G; ++g) {
    __m256i w[2 * NB];
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) {
      const std::int8_t* src = wb + (j * G + g) * 64;
      w[2 * j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
      w[2 * j + 1] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32));
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256i xb = _mm256_set1_epi32(word_at(xb0 + r * Kp + 4 * g));
      const __m256i xa = _mm256_abs_epi8(xb);
#pragma GCC unroll 8
      for (int j = 0; j < 2 * NB; ++j) {
        const __m256i prod = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(w[j], xb));
        acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(prod, ones));
      }
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  alignas(32) std::int32_t ibuf[8];
  alignas(32) float fbuf[8];
  for (int j = 0; j < 2 * NB; ++j) {
    const std::int64_t o = b0 * 16 + j * 8;
    if (o >= p.O) break;
    const std::int64_t left = std::min<std::int64_t>(8, p.O - o);
    const __m256 m = _mm256_loadu_ps(p.mult + o);
    const __m256 b = _mm256_loadu_ps(p.bias + o);
    for (int r = 0; r < R; ++r) {
      const std::int64_t at = (r0 + r) * p.O + o;
      if (p.acc) {
        if (left == 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.acc + at), acc[r][j]);
        else {
          _mm256_store_si256(reinterpret_cast<__m256i*>(ibuf), acc[r][j]);
          std::memcpy(p.acc + at, ibuf, static_cast<std::size_t>(left) * 4);
        }
        continue;
      }
      __m256 yv = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][j]), m), b);
      if (p.relu) yv = _mm256_and_ps(yv, _mm256_cmp_ps(yv, zero, _CMP_GT_OQ));
      if (p.y8) {
        _mm256_store_ps(fbuf, yv);
        for (std::int64_t i = 0; i < left; ++i) p.y8[at + i] = detail::int8_code(fbuf[i], p.out_inv);
      } else if (left == 8) {
        _mm256_storeu_ps(p.y + at, yv);
      } else {
        _mm256_store_ps(fbuf, yv);
        std::memcpy(p.y + at, fbuf, static_cast<std::size_t>(left) * 4);
      }
    }
  }
}

// Calls f(R, NB) with the instantiation for an r x nb tile (r <= R, nb <= NB).
template <int R, int NB, class F>
void run_tile(F&& f, int r, int nb) {
  if constexpr (R > 1) {
    if (r < R) return run_tile<R - 1, NB>(f, r, nb);
  }
  if constexpr (NB > 1) {
    if (nb < NB) return run_tile<R, NB - 1>(f, r, nb);
  }
  f(std::integral_constant<int, R>{}, std::integral_constant<int, NB>{});
}

// ---- AVX-512 passes over activations (used whenever the CPU has AVX-512 BW) ----

#define SEISOKU_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// max |x[i]| over [0, n); *bad set when some element is NaN or infinite.
SEISOKU_AVX512 float max_abs_avx512(const float* x, std::int64_t n, bool* bad) {
  const __m512 top = _mm512_set1_ps(3.402823466e38f);
  const __m512i mag = _mm512_set1_epi32(0x7fffffff);
  __m512 m0 = _mm512_setzero_ps(), m1 = m0;
  __mmask16 nonfinite = 0;
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(x + i)), mag));
    const __m512 b = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(x + i + 16)), mag));
    nonfinite |= _mm512_cmp_ps_mask(a, top, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(b, top, _CMP_NLE_UQ);
    m0 = _mm512_max_ps(m0, a);
    m1 = _mm512_max_ps(m1, b);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(k, x + i)), mag));
    nonfinite |= _mm512_cmp_ps_mask(a, top, _CMP_NLE_UQ);
    m0 = _mm512_max_ps(m0, a);
  }
  *bad = nonfinite != 0;
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
}

// q[i] = int8_code(x[i], inv) over [0, n); returns whether some x[i] is NaN.
SEISOKU_AVX512 bool quantize_avx512(const float* x, std::int8_t* q, std::int64_t n, float inv) {
  const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  __mmask16 nan = 0;
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = static_cast<__mmask16>(n - i >= 16 ? 0xffff : (1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
    _mm_mask_storeu_epi8(q + i, k, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(r)));
  }
  return nan != 0;
}

bool has_avx512bw() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return yes;
}

Int8Kernel detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
    return Int8Kernel::avx512_vnni;
  if (__builtin_cpu_supports("avx2")) return Int8Kernel::avx2;
  return Int8Kernel::scalar;
}

std::atomic<int> g_kernel{-1};
std::once_flag g_init;

}  // namespace

bool int8_kernel_supported(Int8Kernel k) {
  const Int8Kernel best = detect();
  if (k == Int8Kernel::scalar) return true;
  if (k == Int8Kernel::avx2) return best != Int8Kernel::scalar;
  return best == Int8Kernel::avx512_vnni;
}

Int8Kernel int8_kernel_current() {
  std::call_once(g_init, [] {
    Int8Kernel k = detect();
    if (const char* env = std::getenv("SEISOKU_INT8_KERNEL")) {
      const std::string s = env;
      Int8Kernel want = k;
      if (s == "scalar") want = Int8Kernel::scalar;
      else if (s == "avx2") want = Int8Kernel::avx2;
      else if (s == "avx512_vnni") want = Int8Kernel::avx512_vnni;
      if (int8_kernel_supported(want)) k = want;  // an unusable request keeps the detected kernel
    }
    int expected = -1;
    g_kernel.compare_exchange_strong(expected, static_cast<int>(k));
  });
  return static_cast<Int8Kernel>(g_kernel.load());
}

void int8_kernel_set(Int8Kernel k) {
  int8_kernel_current();
  g_kernel.store(static_cast<int>(k));
}

float int8_max_abs(const Tensor& x, std::int64_t* bad) {
  const float* v = x.data_as<float>();
  const std::int64_t n = x.numel();
  struct Part {
    float m;
    bool bad;
  };
  const bool avx512 = has_avx512bw() && int8_kernel_current() != Int8Kernel::scalar;
  const Part r = block_reduce(
      n, Part{0.0f, false},
      [v, avx512](std::int64_t i0, std::int64_t i1) {
        if (avx512) {
          bool bad = false;
          const float m = max_abs_avx512(v + i0, i1 - i0, &bad);
          return Part{m, bad};
        }
        float m = 0.0f;
        int b = 0;
#pragma omp simd reduction(max : m) reduction(| : b)
        for (std::int64_t i = i0; i < i1; ++i) {
          const float a = std::fabs(v[i]);
          b |= a <= 3.402823466e38f ? 0 : 1;
          m = a > m ? a : m;
        }
        return Part{m, b != 0};
      },
      [](Part a, Part b) { return Part{std::max(a.m, b.m), a.bad || b.bad}; });
  *bad = -1;
  if (r.bad)
    for (std::int64_t i = 0; i < n; ++i)
      if (!(std::fabs(v[i]) <= 3.402823466e38f)) {
        *bad = i;
        break;
      }
  return r.m;
}

std::int64_t quantize_int8(const Tensor& x, const Tensor& out, float inv_scale) {
  const float* v = x.data_as<float>();
  std::int8_t* q = out.data_as<std::int8_t>();
  std::atomic<bool> any_nan{false};
  const bool avx512 = has_avx512bw() && int8_kernel_current() != Int8Kernel::scalar;
  parallel_for(x.numel(), [&](std::int64_t i0, std::int64_t i1) {
    if (avx512) {
      if (quantize_avx512(v + i0, q + i0, i1 - i0, inv_scale)) any_nan.store(true, std::memory_order_relaxed);
      return;
    }
    int b = 0;
#pragma omp simd reduction(| : b)
    for (std::int64_t i = i0; i < i1; ++i) {
      b |= v[i] != v[i] ? 1 : 0;
      q[i] = detail::int8_code(v[i], inv_scale);
    }
    if (b) any_nan.store(true, std::memory_order_relaxed);
  });
  if (!any_nan.load()) return -1;
  for (std::int64_t i = 0; i < x.numel(); ++i)
    if (v[i] != v[i]) return i;
  return -1;
}

void int8_gemm(const Tensor& xq, float x_scale, const Int8Weight& w, const Tensor& bias, const Tensor& y, bool relu,
               bool acc_only, float out_inv) {
  const std::int64_t N = xq.shape()[0], K = w.in_features(), O = w.out_features();
  const std::int64_t OB = (O + 15) / 16, Op = OB * 16;
  std::vector<float> mult(static_cast<std::size_t>(Op), 0.0f), bvec(static_cast<std::size_t>(Op), 0.0f);
  for (std::int64_t o = 0; o < O; ++o) {
    mult[static_cast<std::size_t>(o)] = x_scale * w.scale(o);
    if (bias.defined()) bvec[static_cast<std::size_t>(o)] = bias.data_as<float>()[o];
  }
  const Int8Kernel kernel = int8_kernel_current();
  // The vector kernels read x as rows padded to whole groups of 4 (zeros; + 128 for VNNI).
  const std::int64_t Kp = w.in_padded();
  std::vector<std::int8_t> padded;
  if (kernel != Int8Kernel::scalar) {
    padded.assign(static_cast<std::size_t>(N * Kp), 0);
    const std::int8_t* src = xq.data_as<std::int8_t>();
    const bool shift = kernel == Int8Kernel::avx512_vnni;
    for (std::int64_t n = 0; n < N; ++n) {
      std::int8_t* dst = padded.data() + n * Kp;
      const std::int8_t* row = src + n * K;
      std::memcpy(dst, row, static_cast<std::size_t>(K));
      if (shift) {
        auto* u = reinterpret_cast<std::uint8_t*>(dst);
#pragma omp simd
        for (std::int64_t k = 0; k < Kp; ++k) u[k] = static_cast<std::uint8_t>(u[k] ^ 0x80u);
      }
    }
  }
  Gemm p{xq.data_as<std::int8_t>(),
         padded.data(),
         w.codes().data_as<std::int8_t>(),
         w.packed().data_as<std::int8_t>(),
         w.row_correction().data_as<std::int32_t>(),
         mult.data(),
         bvec.data(),
         acc_only || out_inv > 0 ? nullptr : y.data_as<float>(),
         acc_only ? y.data_as<std::int32_t>() : nullptr,
         out_inv > 0 ? y.data_as<std::int8_t>() : nullptr,
         N,
         K,
         O,
         Kp / 4,
         relu,
         out_inv};
  if (kernel == Int8Kernel::avx2) p.corr = nullptr;  // the sign trick needs no correction
  // Tile shapes (rows x 16-output blocks of accumulators held in registers): VNNI 8 x 2 from 8
  // rows on, else 4 x 4 (16 of the 32 zmm registers), AVX2 4 x 1 or, for fewer rows, 2 x 2 (8
  // of the 16 ymm registers).
  const bool vnni = kernel == Int8Kernel::avx512_vnni;
  const bool tall = vnni && N >= 8;
  const int rows = tall ? 8 : static_cast<int>(std::min<std::int64_t>(N, 4));
  const int nb = tall ? 2 : (vnni ? 4 : (rows >= 4 ? 1 : 2));
  const std::int64_t row_tiles = (N + rows - 1) / rows, block_groups = (OB + nb - 1) / nb;
  // Threads only where the product has a few million multiply-adds (tens of microseconds):
  // waking OpenMP workers costs more than a smaller product takes.
  const std::int64_t cost = rows * nb * 16 * K / 64;
  parallel_tasks(row_tiles * block_groups, cost, [&](std::int64_t t) {
    const std::int64_t bg = t / row_tiles, rt = t % row_tiles;  // a weight panel, then its rows
    const std::int64_t r0 = rt * rows, b0 = bg * nb;
    const int r = static_cast<int>(std::min<std::int64_t>(rows, N - r0));
    const int bcount = static_cast<int>(std::min<std::int64_t>(nb, OB - b0));
    if (kernel == Int8Kernel::scalar) {
      scalar_rows(p, r0, r0 + r, b0 * 16, std::min(O, (b0 + bcount) * 16));
    } else if (kernel == Int8Kernel::avx512_vnni) {
      auto tile = [&](auto R, auto NB) { vnni_tile<decltype(R)::value, decltype(NB)::value>(p, r0, b0); };
      if (tall) run_tile<8, 2>(tile, r, bcount);
      else run_tile<4, 4>(tile, r, bcount);
    } else {
      run_tile<4, 2>([&](auto R, auto NB) { avx2_tile<decltype(R)::value, decltype(NB)::value>(p, r0, b0); }, r,
                     bcount);
    }
  });
}

void int8_im2col(const Tensor& xq, const Tensor& cols, const ConvGeometry& g) {
  const std::int8_t* src = xq.data_as<std::int8_t>();
  std::int8_t* dst = cols.data_as<std::int8_t>();
  const std::int64_t K = g.k(), L = g.l();
  parallel_for(g.n * L, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t n = r / L, oh = (r % L) / g.wo, ow = r % g.wo;
      std::int8_t* row = dst + r * K;
      for (std::int64_t c = 0; c < g.c; ++c)
        for (std::int64_t i = 0; i < g.kh; ++i) {
          const std::int64_t h = oh * g.sh - g.ph + i;
          const std::int8_t* line = src + ((n * g.c + c) * g.h + h) * g.w;
          for (std::int64_t j = 0; j < g.kw; ++j) {
            const std::int64_t w = ow * g.sw - g.pw + j;
            *row++ = (h >= 0 && h < g.h && w >= 0 && w < g.w) ? line[w] : std::int8_t{0};
          }
        }
    }
  });
}

void int8_rows_to_nchw(const Tensor& rows, const Tensor& y) {
  const float* z = rows.data_as<float>();
  float* out = y.data_as<float>();
  const std::int64_t N = y.shape()[0], O = y.shape()[1], P = y.shape()[2] * y.shape()[3];
  parallel_for(N * O, [&](std::int64_t k0, std::int64_t k1) {
    for (std::int64_t k = k0; k < k1; ++k) {
      const std::int64_t n = k / O, o = k % O;
      const float* col = z + n * P * O + o;
      float* dst = out + k * P;
      for (std::int64_t p = 0; p < P; ++p) dst[p] = col[p * O];
    }
  });
}

void fake_quantize_int8(const Tensor& x, const Tensor& scales, const Tensor& y) {
  const float* v = x.data_as<float>();
  float* out = y.data_as<float>();
  const float* s = scales.data_as<float>();
  const std::int64_t rows = scales.numel() > 1 ? scales.numel() : 1, per = x.numel() / rows;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float sc = s[r], inv = 1.0f / sc;
    const float* vr = v + r * per;
    float* yr = out + r * per;
#pragma omp simd
    for (std::int64_t i = 0; i < per; ++i) yr[i] = static_cast<float>(detail::int8_code(vr[i], inv)) * sc;
  }
}

void fake_quantize_int8_backward(const Tensor& grad, const Tensor& x, const Tensor& scales, const Tensor& gx) {
  const float* g = grad.data_as<float>();
  const float* v = x.data_as<float>();
  float* out = gx.data_as<float>();
  const float* s = scales.data_as<float>();
  const std::int64_t rows = scales.numel() > 1 ? scales.numel() : 1, per = x.numel() / rows;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float inv = 1.0f / s[r];
#pragma omp simd
    for (std::int64_t i = r * per; i < (r + 1) * per; ++i) out[i] = detail::int8_in_range(v[i], inv) ? g[i] : 0.0f;
  }
}

}  // namespace seisoku::cpu
