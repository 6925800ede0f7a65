// CPU kernels of the augmentation family. One task per sample (parallel_tasks over the
// batch): the sample runs its stages in order through two thread-local scratch images, so a
// sample's result depends only on its own plan. The per-pixel arithmetic is the shared code
// of kernels_augment.hpp that the CUDA twin runs too; the CPU adds two layouts of the same
// computation: integer axis-aligned maps (flips, crops) as row copies, and the Gaussian
// smoothing of the elastic fields as recursive passes over whole rows at once (vectorized
// across the row, same operations per value as smooth_line).
//
// Elastic fields: the 2 H W uniform words are drawn in the order of the transposed fields
// (dx then dy, each W x H), smoothed along x as rows of that layout, transposed, smoothed
// along y, then scaled by alpha.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dispatch.hpp"
#include "kernels_augment.hpp"
#include "parallel.hpp"
#include "normal_lanes.hpp"
#include "philox_lanes.hpp"

#if defined(__SSE__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {
namespace {

// Thread-local scratch: two images and the float work space of the elastic fields.
struct Scratch {
  std::vector<unsigned char> image[2];
  std::vector<float> field, field_t, rows, plane, source;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

template <class T>
T* scratch_image(int which, std::int64_t values) {
  std::vector<unsigned char>& v = scratch().image[which];
  const std::size_t bytes = static_cast<std::size_t>(values) * sizeof(T);
  if (v.size() < bytes) v.resize(bytes);
  return reinterpret_cast<T*>(v.data());
}

float* scratch_floats(std::vector<float>& v, std::int64_t n) {
  if (v.size() < static_cast<std::size_t>(n)) v.resize(static_cast<std::size_t>(n));
  return v.data();
}

#if defined(__SSSE3__)
// The 16 3-byte pixels at s in reverse order at d: each output vector gathers its bytes from
// the three input vectors with one byte shuffle each.
inline void reverse16_rgb(const unsigned char* s, unsigned char* d) {
  struct Masks {
    alignas(16) std::int8_t m[3][3][16];
    Masks() {
      for (int o = 0; o < 3; ++o)
        for (int i = 0; i < 3; ++i)
          for (int b = 0; b < 16; ++b) {
            const int ob = 16 * o + b, sb = 3 * (15 - ob / 3) + ob % 3;
            m[o][i][b] = static_cast<std::int8_t>(sb / 16 == i ? sb % 16 : -128);
          }
    }
  };
  static const Masks masks;
  const __m128i in[3] = {_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)),
                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16)),
                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 32))};
  for (int o = 0; o < 3; ++o) {
    __m128i v = _mm_shuffle_epi8(in[0], _mm_load_si128(reinterpret_cast<const __m128i*>(masks.m[o][0])));
    v = _mm_or_si128(v, _mm_shuffle_epi8(in[1], _mm_load_si128(reinterpret_cast<const __m128i*>(masks.m[o][1]))));
    v = _mm_or_si128(v, _mm_shuffle_epi8(in[2], _mm_load_si128(reinterpret_cast<const __m128i*>(masks.m[o][2]))));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16 * o), v);
  }
}
#endif

// drow[x] = srow[tx - x] for x in [xa, xb), pixels of Q values (Q = 0: q).
template <int Q, class T>
inline void reverse_pixels(T* __restrict drow, const T* __restrict srow, std::int64_t tx, std::int64_t xa,
                           std::int64_t xb, std::int64_t q) {
  const std::int64_t n = Q > 0 ? Q : q;
#if defined(__SSSE3__)
  if constexpr (Q == 3 && sizeof(T) == 1) {
    for (; xa + 16 <= xb; xa += 16) reverse16_rgb(srow + (tx - xa - 15) * 3, drow + xa * 3);
  }
#endif
  for (std::int64_t x = xa; x < xb; ++x)
    for (std::int64_t c = 0; c < n; ++c) drow[x * n + c] = srow[(tx - x) * n + c];
}

// Integer axis-aligned map (flips, crops): source (fx x + tx, fy y + ty), fx, fy = +-1.
template <class T>
void geometric_rows(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  const ImageShape &in = st.in, &o = st.out;
  const auto fx = static_cast<std::int64_t>(ss.m[0]), tx = static_cast<std::int64_t>(ss.m[2]);
  const auto fy = static_cast<std::int64_t>(ss.m[4]), ty = static_cast<std::int64_t>(ss.m[5]);
  const std::int64_t q = o.q;
  const T fill = store_value<T>(st.fill);
  // Output columns [xa, xb) read inside the source row.
  std::int64_t xa, xb;
  if (fx == 1) xa = std::max<std::int64_t>(0, -tx), xb = std::min(o.w, in.w - tx);
  else xa = std::max<std::int64_t>(0, tx - in.w + 1), xb = std::min(o.w, tx + 1);
  xa = std::min(xa, o.w);
  xb = std::max(xb, xa);
  for (std::int64_t p = 0; p < o.p; ++p) {
    for (std::int64_t y = 0; y < o.h; ++y) {
      T* drow = dst + p * o.plane() + y * o.w * q;
      const std::int64_t iy = border_index(fy * y + ty, in.h, st.border);
      if (iy < 0) {
        std::fill(drow, drow + o.w * q, fill);
        continue;
      }
      const T* srow = src + p * in.plane() + iy * in.w * q;
#if defined(__SSE__)
      // Mirrored rows are read backwards, which the hardware prefetchers follow poorly: ask
      // for the source row two output rows ahead.
      if (fx != 1 && y + 2 < o.h) {
        const std::int64_t ahead = border_index(fy * (y + 2) + ty, in.h, st.border);
        if (ahead >= 0) {
          const char* a = reinterpret_cast<const char*>(src + p * in.plane() + ahead * in.w * q);
          const std::int64_t bytes = in.w * q * static_cast<std::int64_t>(sizeof(T));
          for (std::int64_t b = 0; b < bytes; b += 64) _mm_prefetch(a + b, _MM_HINT_T0);
        }
      }
#endif
      auto edge_pixel = [&](std::int64_t x) {
        const std::int64_t ix = border_index(fx * x + tx, in.w, st.border);
        for (std::int64_t c = 0; c < q; ++c) drow[x * q + c] = ix < 0 ? fill : srow[ix * q + c];
      };
      for (std::int64_t x = 0; x < xa; ++x) edge_pixel(x);
      if (fx == 1) {
        std::memcpy(drow + xa * q, srow + (xa + tx) * q, static_cast<std::size_t>((xb - xa) * q) * sizeof(T));
      } else if (q == 1) {
        reverse_pixels<1>(drow, srow, tx, xa, xb, q);
      } else if (q == 3) {
        reverse_pixels<3>(drow, srow, tx, xa, xb, q);
      } else {
        for (std::int64_t x = xa; x < xb; ++x)
          for (std::int64_t c = 0; c < q; ++c) drow[x * q + c] = srow[(tx - x) * q + c];
      }
      for (std::int64_t x = xb; x < o.w; ++x) edge_pixel(x);
    }
  }
}

// Output pixel (y, x) from taps that all lie inside the image (k0x .. k0x + K - 1, k0y ..):
// the arithmetic of resample_pixel without the border. Q = values per pixel (0: in.q).
template <int K, int Q, class S, class T>
inline void gather_interior(const S* src, T* dst, const ImageShape& in, const ImageShape& out, std::int64_t y,
                            std::int64_t x, std::int64_t k0x, const float* wx, std::int64_t k0y, const float* wy) {
  const std::int64_t q = Q > 0 ? Q : in.q;
  const std::int64_t row_stride = in.w * q, in_plane = in.plane(), out_plane = out.plane();
  T* d = dst + (y * out.w + x) * q;
  for (std::int64_t p = 0; p < in.p; ++p) {
    const S* base = src + p * in_plane + k0y * row_stride + k0x * q;
    T* dp = d + p * out_plane;
    for (std::int64_t c = 0; c < q; ++c) {
      float acc = 0.0f;
      for (int j = 0; j < K; ++j) {
        const S* r = base + j * row_stride + c;
        float row = 0.0f;
        for (int i = 0; i < K; ++i) row = row + wx[i] * static_cast<float>(r[i * q]);
        acc = acc + wy[j] * row;
      }
      dp[c] = store_value<T>(acc);
    }
  }
}

// axis_weights<K> for n coordinates at once (weights in K rows of n), written out so that
// the loop vectorizes: the same operations, value by value.
template <int K>
void row_weights(const float* __restrict s, std::int64_t n, float* __restrict wt, std::int32_t* __restrict k) {
  for (std::int64_t x = 0; x < n; ++x) {
    float v = s[x];
    v = v > -1.0e9f ? v : -1.0e9f;  // clamp_coord
    v = v < 1.0e9f ? v : 1.0e9f;
    if constexpr (K == 1) {
      wt[x] = 1.0f;
      k[x] = static_cast<std::int32_t>(std::floor(v + 0.5f));
    } else if constexpr (K == 2) {
      const float f = std::floor(v);
      const float t = v - f;
      wt[x] = 1.0f - t;
      wt[n + x] = t;
      k[x] = static_cast<std::int32_t>(f);
    } else {
      const float f = std::floor(v);
      const float t = v - f;
      const float t2 = t * t, t3 = t2 * t;
      wt[x] = 0.5f * ((2.0f * t2 - t3) - t);
      wt[n + x] = 0.5f * ((3.0f * t3 - 5.0f * t2) + 2.0f);
      wt[2 * n + x] = 0.5f * ((4.0f * t2 - 3.0f * t3) + t);
      wt[3 * n + x] = 0.5f * (t3 - t2);
      k[x] = static_cast<std::int32_t>(f) - 1;
    }
  }
}

// Per-row work space: source coordinates, first taps, weights (K rows of W) and whether all
// taps of a pixel lie inside the image.
struct RowTaps {
  std::vector<float> sx, sy, wx, wy;
  std::vector<std::int32_t> kx, ky;
  std::vector<std::uint8_t> inside;
  void reserve(std::int64_t w, int k) {
    const auto n = static_cast<std::size_t>(w);
    if (sx.size() >= n * static_cast<std::size_t>(k)) return;
    sx.resize(n), sy.resize(n), kx.resize(n), ky.resize(n), inside.resize(n);
    wx.resize(n * static_cast<std::size_t>(k)), wy.resize(n * static_cast<std::size_t>(k));
  }
};

RowTaps& row_taps(std::int64_t w) {
  thread_local RowTaps t;
  t.reserve(w, 4);
  return t;
}

template <int K, int Q, class T>
void scalar_pixels(const T* src, const float* srcf, T* dst, const ImageShape& in, const ImageShape& out,
                   std::int64_t y, RowTaps& t, Border border, float fill, std::int64_t x0, std::int64_t x1);

#if defined(__AVX2__)
// Output pixels x .. x + 7 of row y, all with interior bilinear taps, from the float source
// sf: gathers of the four taps, then the operations of gather_interior in the same order.
template <int Q, class T>
inline void bilinear8(const float* sf, T* dst, const ImageShape& in, const ImageShape& out, std::int64_t y,
                      std::int64_t x, const float* wx0, const float* wx1, const float* wy0, const float* wy1,
                      const std::int32_t* kx, const std::int32_t* ky) {
  const std::int64_t q = Q > 0 ? Q : in.q;
  const auto row = static_cast<std::int32_t>(in.w * q), qi = static_cast<std::int32_t>(q);
  const __m256 a0 = _mm256_loadu_ps(wx0), a1 = _mm256_loadu_ps(wx1);
  const __m256 b0 = _mm256_loadu_ps(wy0), b1 = _mm256_loadu_ps(wy1), zero = _mm256_setzero_ps();
  const __m256i kxv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kx));
  const __m256i kyv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ky));
  const __m256i i00 = _mm256_add_epi32(_mm256_mullo_epi32(kyv, _mm256_set1_epi32(row)),
                                       _mm256_mullo_epi32(kxv, _mm256_set1_epi32(qi)));
  const __m256i i01 = _mm256_add_epi32(i00, _mm256_set1_epi32(qi));
  const __m256i i10 = _mm256_add_epi32(i00, _mm256_set1_epi32(row));
  const __m256i i11 = _mm256_add_epi32(i10, _mm256_set1_epi32(qi));
  alignas(32) float res[8];
  for (std::int64_t p = 0; p < in.p; ++p) {
    for (std::int64_t c = 0; c < q; ++c) {
      const float* base = sf + p * in.plane() + c;
      const __m256 v00 = _mm256_i32gather_ps(base, i00, 4), v01 = _mm256_i32gather_ps(base, i01, 4);
      const __m256 v10 = _mm256_i32gather_ps(base, i10, 4), v11 = _mm256_i32gather_ps(base, i11, 4);
      const __m256 r0 = _mm256_add_ps(_mm256_add_ps(zero, _mm256_mul_ps(a0, v00)), _mm256_mul_ps(a1, v01));
      const __m256 r1 = _mm256_add_ps(_mm256_add_ps(zero, _mm256_mul_ps(a0, v10)), _mm256_mul_ps(a1, v11));
      __m256 acc = _mm256_add_ps(_mm256_add_ps(zero, _mm256_mul_ps(b0, r0)), _mm256_mul_ps(b1, r1));
      T* d = dst + p * out.plane() + (y * out.w + x) * q + c;
      if constexpr (std::is_same_v<T, float>) {
        _mm256_store_ps(res, acc);
        for (int i = 0; i < 8; ++i) d[i * q] = res[i];
      } else {  // store_value: NaN and negatives to 0, at most 255, rounded half up
        acc = _mm256_min_ps(_mm256_max_ps(acc, zero), _mm256_set1_ps(255.0f));
        const __m256i iv = _mm256_cvttps_epi32(_mm256_add_ps(acc, _mm256_set1_ps(0.5f)));
        alignas(32) std::int32_t vals[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(vals), iv);
        for (int i = 0; i < 8; ++i) d[i * q] = static_cast<T>(vals[i]);
      }
    }
  }
}
#endif

#if defined(__AVX2__)
// One NHWC pixel of 3 values with interior bilinear taps at p (row stride `row`): the two
// taps of a source row are lanes 0-2 of the pixels at p and p + 3 (lane 3 masked off), then
// the operations of gather_interior lane by lane. `spill`: the output may be written as 4
// bytes (the next pixel of the row is written later).
inline __m128 load_rgb(const float* p) { return _mm_maskload_ps(p, _mm_setr_epi32(-1, -1, -1, 0)); }
// Reads 4 bytes (the caller keeps the 4th inside the buffer); lane 3 is ignored.
inline __m128 load_rgb(const std::uint8_t* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(v))));
}

template <class S, class T>
inline void bilinear_rgb(const S* p, std::int64_t row, T* d, bool spill, float wx0, float wx1, float wy0,
                         float wy1) {
  const __m128i m3 = _mm_setr_epi32(-1, -1, -1, 0);
  const __m128 zero = _mm_setzero_ps(), a0 = _mm_set1_ps(wx0), a1 = _mm_set1_ps(wx1);
  const __m128 v00 = load_rgb(p), v01 = load_rgb(p + 3);
  const __m128 v10 = load_rgb(p + row), v11 = load_rgb(p + row + 3);
  const __m128 r0 = _mm_add_ps(_mm_add_ps(zero, _mm_mul_ps(a0, v00)), _mm_mul_ps(a1, v01));
  const __m128 r1 = _mm_add_ps(_mm_add_ps(zero, _mm_mul_ps(a0, v10)), _mm_mul_ps(a1, v11));
  __m128 acc = _mm_add_ps(_mm_add_ps(zero, _mm_mul_ps(_mm_set1_ps(wy0), r0)), _mm_mul_ps(_mm_set1_ps(wy1), r1));
  if constexpr (std::is_same_v<T, float>) {
    _mm_maskstore_ps(d, m3, acc);
  } else {  // store_value
    acc = _mm_min_ps(_mm_max_ps(acc, zero), _mm_set1_ps(255.0f));
    const __m128i iv = _mm_cvttps_epi32(_mm_add_ps(acc, _mm_set1_ps(0.5f)));
    const std::uint32_t bytes = static_cast<std::uint32_t>(
        _mm_cvtsi128_si32(_mm_shuffle_epi8(iv, _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1))));
    if (spill) {
      std::memcpy(d, &bytes, 4);
    } else {
      d[0] = static_cast<T>(bytes & 0xff), d[1] = static_cast<T>((bytes >> 8) & 0xff);
      d[2] = static_cast<T>((bytes >> 16) & 0xff);
    }
  }
}
#endif

// Output row y read at (t.sx[x], t.sy[x]): weights for the whole row first (a vectorized
// loop), then each pixel through gather_interior (from srcf, the source as float, when
// given), or resample_pixel where a tap falls outside. The same arithmetic as
// resample_pixel everywhere.
template <int K, int Q, class T>
void resample_row(const T* src, const float* srcf, T* dst, const ImageShape& in, const ImageShape& out,
                  std::int64_t y, RowTaps& t, Border border, float fill) {
  const std::int64_t w = out.w;
  const float* __restrict sx = t.sx.data();
  const float* __restrict sy = t.sy.data();
  float* __restrict wx = t.wx.data();
  float* __restrict wy = t.wy.data();
  std::int32_t* __restrict kx = t.kx.data();
  std::int32_t* __restrict ky = t.ky.data();
  std::uint8_t* __restrict inside = t.inside.data();
  row_weights<K>(sx, w, wx, kx);
  row_weights<K>(sy, w, wy, ky);
  const auto w_last = static_cast<std::int32_t>(in.w - K), h_last = static_cast<std::int32_t>(in.h - K);
  for (std::int64_t x = 0; x < w; ++x)
    inside[x] = static_cast<std::uint8_t>((kx[x] >= 0) & (kx[x] <= w_last) & (ky[x] >= 0) & (ky[x] <= h_last));
  std::int64_t x = 0;
#if defined(__AVX2__)
  if constexpr (K == 2) {
    if (Q == 3 && in.p == 1) {  // NHWC RGB: one pixel per step, each tap pixel in one load
      for (; x < w; ++x) {
        // The 4-byte loads of the last tap pixel read one byte past it: not at the image's end.
        if (!inside[x] || (ky[x] == h_last && kx[x] == w_last)) {
          scalar_pixels<K, Q>(src, srcf, dst, in, out, y, t, border, fill, x, x + 1);
          continue;
        }
        bilinear_rgb(src + (ky[x] * in.w + kx[x]) * 3, in.w * 3, dst + (y * out.w + x) * 3, x + 1 < w, wx[x],
                     wx[w + x], wy[x], wy[w + x]);
      }
    } else if (srcf != nullptr || std::is_same_v<T, float>) {
      const float* sf = srcf != nullptr ? srcf : reinterpret_cast<const float*>(src);
      if (in.size() < (std::int64_t{1} << 31) - 1) {
        for (; x + 8 <= w; x += 8) {
          std::uint64_t all;
          std::memcpy(&all, inside + x, 8);
          if (all != 0x0101010101010101ull) {
            scalar_pixels<K, Q>(src, srcf, dst, in, out, y, t, border, fill, x, x + 8);
            continue;
          }
          bilinear8<Q>(sf, dst, in, out, y, x, wx + x, wx + w + x, wy + x, wy + w + x, kx + x, ky + x);
        }
      }
    }
  }
#endif
  scalar_pixels<K, Q>(src, srcf, dst, in, out, y, t, border, fill, x, w);
}

// Pixels [x0, x1) of output row y after row_weights (the scalar part of resample_row).
template <int K, int Q, class T>
void scalar_pixels(const T* src, const float* srcf, T* dst, const ImageShape& in, const ImageShape& out,
                   std::int64_t y, RowTaps& t, Border border, float fill, std::int64_t x0, std::int64_t x1) {
  const std::int64_t w = out.w;
  const float* wx = t.wx.data();
  const float* wy = t.wy.data();
  for (std::int64_t x = x0; x < x1; ++x) {
    if (!t.inside[x] && border == Border::constant) {
      const std::int32_t k0x = t.kx[x], k0y = t.ky[x];
      if (k0x + K <= 0 || k0x >= in.w || k0y + K <= 0 || k0y >= in.h) {  // every tap reads the fill
        float acc = 0.0f;
        for (int j = 0; j < K; ++j) {
          float row = 0.0f;
          for (int i = 0; i < K; ++i) row = row + wx[i * w + x] * fill;
          acc = acc + wy[j * w + x] * row;
        }
        const T v = store_value<T>(acc);
        T* d = dst + (y * out.w + x) * out.q;
        for (std::int64_t p = 0; p < out.p; ++p)
          for (std::int64_t c = 0; c < out.q; ++c) d[p * out.plane() + c] = v;
        continue;
      }
    }
    if (t.inside[x]) {
      float a[K], b[K];
      for (int i = 0; i < K; ++i) a[i] = wx[i * w + x], b[i] = wy[i * w + x];
      if (srcf != nullptr) gather_interior<K, Q>(srcf, dst, in, out, y, x, t.kx[x], a, t.ky[x], b);
      else gather_interior<K, Q>(src, dst, in, out, y, x, t.kx[x], a, t.ky[x], b);
    } else {
      resample_pixel<K>(src, dst, in, out, y, x, t.sx[x], t.sy[x], border, fill);
    }
  }
}

// The source as float for interpolating kernels over uint8 images (one vectorized
// conversion instead of one per tap); nullptr where it does not pay.
template <int K, class T>
const float* float_source(const T* src, std::int64_t n) {
  if constexpr (std::is_same_v<T, float> || K == 1) {
    return nullptr;
  } else {
    float* f = scratch_floats(scratch().source, n);
    for (std::int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(src[i]);
    return f;
  }
}

template <int K, int Q, class T>
void geometric_affine_q(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  RowTaps& t = row_taps(st.out.w);
  const float* srcf = K == 2 && Q == 3 && st.in.p == 1 ? nullptr : float_source<K>(src, st.in.size());
  const float m0 = ss.m[0], m1 = ss.m[1], m2 = ss.m[2], m3 = ss.m[3], m4 = ss.m[4], m5 = ss.m[5];
  for (std::int64_t y = 0; y < st.out.h; ++y) {
    const float yf = static_cast<float>(y);
    float* __restrict sx = t.sx.data();
    float* __restrict sy = t.sy.data();
    for (std::int64_t x = 0; x < st.out.w; ++x) {  // affine_source
      const float xf = static_cast<float>(x);
      sx[x] = (m0 * xf + m1 * yf) + m2;
      sy[x] = (m3 * xf + m4 * yf) + m5;
    }
    resample_row<K, Q>(src, srcf, dst, st.in, st.out, y, t, st.border, st.fill);
  }
}

template <int K, class T>
void geometric_affine(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  if (st.in.q == 1) geometric_affine_q<K, 1>(src, dst, st, ss);
  else if (st.in.q == 3) geometric_affine_q<K, 3>(src, dst, st, ss);
  else geometric_affine_q<K, 0>(src, dst, st, ss);
}

// Scratch of the separable resampling: column and row taps, and the source rows filtered
// along x (row r + 1 of `rows`; row 0 is the constant-fill row).
struct SeparableScratch {
  std::vector<std::int64_t> ix, iy;
  std::vector<float> wx, wy, rows;
  std::vector<std::uint8_t> done;
};

// An axis-aligned map (m1 = m3 = 0, source (m0 x + m2, m4 y + m5)) as two passes: each source
// row that some output row reads is interpolated along x once, then every output row
// combines its K filtered rows (a vectorized loop). Per value this is resample_pixel's
// arithmetic: row_j = sum_i wx[i] v(j, i) in tap order, then acc = sum_j wy[j] row_j.
template <int K, class T>
void geometric_separable(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  thread_local SeparableScratch sc;
  const ImageShape &in = st.in, &o = st.out;
  const std::int64_t q = in.q, row_len = o.w * q;
  sc.ix.resize(static_cast<std::size_t>(K * o.w)), sc.wx.resize(static_cast<std::size_t>(K * o.w));
  sc.iy.resize(static_cast<std::size_t>(K * o.h)), sc.wy.resize(static_cast<std::size_t>(K * o.h));
  for (std::int64_t x = 0; x < o.w; ++x) {
    float sx, sy;
    affine_source(ss.m, x, 0, &sx, &sy);
    axis_taps<K>(sx, in.w, st.border, &sc.ix[static_cast<std::size_t>(K * x)], &sc.wx[static_cast<std::size_t>(K * x)]);
  }
  for (std::int64_t y = 0; y < o.h; ++y) {
    float sx, sy;
    affine_source(ss.m, 0, y, &sx, &sy);
    axis_taps<K>(sy, in.h, st.border, &sc.iy[static_cast<std::size_t>(K * y)], &sc.wy[static_cast<std::size_t>(K * y)]);
  }
  sc.rows.resize(static_cast<std::size_t>((in.h + 1) * row_len));
  for (std::int64_t p = 0; p < in.p; ++p) {
    const T* plane = src + p * in.plane();
    T* out_plane = dst + p * o.plane();
    sc.done.assign(static_cast<std::size_t>(in.h + 1), 0);
    auto filtered = [&](std::int64_t r) -> const float* {  // r = -1: the fill row
      float* h = sc.rows.data() + (r + 1) * row_len;
      if (sc.done[static_cast<std::size_t>(r + 1)]) return h;
      sc.done[static_cast<std::size_t>(r + 1)] = 1;
      const T* srow = plane + (r >= 0 ? r : 0) * in.w * q;
      for (std::int64_t x = 0; x < o.w; ++x) {
        const std::int64_t* ix = &sc.ix[static_cast<std::size_t>(K * x)];
        const float* wx = &sc.wx[static_cast<std::size_t>(K * x)];
        bool inner = r >= 0;
        for (int i = 0; i < K; ++i) inner = inner && ix[i] >= 0;
#if defined(__AVX2__)
        // NHWC RGB bilinear with adjacent taps: the three values of a tap pixel in one load
        // (not for the row's last pixel, whose 4-byte load would pass the row's end).
        if constexpr (K == 2) {
          if (inner && q == 3 && in.p == 1 && ix[1] == ix[0] + 1 && ix[1] + 1 < in.w) {
            const __m128 a0 = _mm_set1_ps(wx[0]), a1 = _mm_set1_ps(wx[1]);
            const __m128 v0 = load_rgb(srow + ix[0] * 3), v1 = load_rgb(srow + ix[1] * 3);
            const __m128 acc = _mm_add_ps(_mm_add_ps(_mm_setzero_ps(), _mm_mul_ps(a0, v0)), _mm_mul_ps(a1, v1));
            _mm_maskstore_ps(h + x * 3, _mm_setr_epi32(-1, -1, -1, 0), acc);
            continue;
          }
        }
#endif
        if (inner) {
          for (std::int64_t c = 0; c < q; ++c) {
            float acc = 0.0f;
            for (int i = 0; i < K; ++i) acc = acc + wx[i] * static_cast<float>(srow[ix[i] * q + c]);
            h[x * q + c] = acc;
          }
          continue;
        }
        for (std::int64_t c = 0; c < q; ++c) {
          float acc = 0.0f;
          for (int i = 0; i < K; ++i) {
            const float v = (r < 0 || ix[i] < 0) ? st.fill : static_cast<float>(srow[ix[i] * q + c]);
            acc = acc + wx[i] * v;
          }
          h[x * q + c] = acc;
        }
      }
      return h;
    };
    for (std::int64_t y = 0; y < o.h; ++y) {
      const std::int64_t* iy = &sc.iy[static_cast<std::size_t>(K * y)];
      const float* wy = &sc.wy[static_cast<std::size_t>(K * y)];
      const float* rows[K];
      for (int j = 0; j < K; ++j) rows[j] = filtered(iy[j]);
      T* __restrict d = out_plane + y * row_len;
      if constexpr (K == 2) {
        const float* __restrict r0 = rows[0];
        const float* __restrict r1 = rows[1];
        const float w0 = wy[0], w1 = wy[1];
        for (std::int64_t k = 0; k < row_len; ++k) d[k] = store_value<T>((0.0f + w0 * r0[k]) + w1 * r1[k]);
      } else {
        for (std::int64_t k = 0; k < row_len; ++k) {
          float acc = 0.0f;
          for (int j = 0; j < K; ++j) acc = acc + wy[j] * rows[j][k];
          d[k] = store_value<T>(acc);
        }
      }
    }
  }
}

template <class T>
void geometric(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  switch (ss.mode) {
    case kGeoCopy: std::memcpy(dst, src, static_cast<std::size_t>(st.out.size()) * sizeof(T)); return;
    case kGeoRows: geometric_rows(src, dst, st, ss); return;
    case kGeoNearest: geometric_affine<1>(src, dst, st, ss); return;
    default: {
      const bool axis = ss.m[1] == 0.0f && ss.m[3] == 0.0f;
      if (st.interp == Interp::nearest) geometric_affine<1>(src, dst, st, ss);
      else if (st.interp == Interp::bilinear) axis ? geometric_separable<2>(src, dst, st, ss) : geometric_affine<2>(src, dst, st, ss);
      else axis ? geometric_separable<4>(src, dst, st, ss) : geometric_affine<4>(src, dst, st, ss);
    }
  }
}

template <int K, int Q, class T>
void displace_kq(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img, Border border,
                 float fill) {
  RowTaps& t = row_taps(img.w);
  const float* srcf = K == 2 && Q == 3 && img.p == 1 ? nullptr : float_source<K>(src, img.size());
  for (std::int64_t y = 0; y < img.h; ++y) {
    const float yf = static_cast<float>(y);
    float* __restrict sx = t.sx.data();
    float* __restrict sy = t.sy.data();
    const float* rdx = dx + y * img.w;
    const float* rdy = dy + y * img.w;
    for (std::int64_t x = 0; x < img.w; ++x) sx[x] = static_cast<float>(x) + rdx[x], sy[x] = yf + rdy[x];
    resample_row<K, Q>(src, srcf, dst, img, img, y, t, border, fill);
  }
}

template <int K, class T>
void displace_k(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img, Border border,
                float fill) {
  if (img.q == 1) displace_kq<K, 1>(src, dst, dx, dy, img, border, fill);
  else if (img.q == 3) displace_kq<K, 3>(src, dst, dx, dy, img, border, fill);
  else displace_kq<K, 0>(src, dst, dx, dy, img, border, fill);
}

template <class T>
void displace_image(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img, Interp interp,
                    Border border, float fill) {
  if (interp == Interp::nearest) displace_k<1>(src, dst, dx, dy, img, border, fill);
  else if (interp == Interp::bilinear) displace_k<2>(src, dst, dx, dy, img, border, fill);
  else displace_k<4>(src, dst, dx, dy, img, border, fill);
}

// Smooths the columns of d (L rows of M values) along the rows: smooth_line on every column,
// run row by row so that the inner loops are over contiguous values.
void smooth_rows(float* d, std::int64_t rows, std::int64_t m, const SmoothCoef& c, float* tmp) {
  if (c.mode == 0) return;
  if (c.mode == 3) {
    float* src = scratch_floats(scratch().plane, rows * m);
    std::memcpy(src, d, static_cast<std::size_t>(rows * m) * sizeof(float));
    for (std::int64_t i = 0; i < rows; ++i) {
      float* __restrict out = d + i * m;
      const float* c0 = src + i * m;
      for (std::int64_t j = 0; j < m; ++j) out[j] = c.g[0] * c0[j];
      for (int k = 1; k <= c.radius; ++k) {
        const float* a = src + std::max<std::int64_t>(i - k, 0) * m;
        const float* b = src + std::min<std::int64_t>(i + k, rows - 1) * m;
        const float gk = c.g[k];
        for (std::int64_t j = 0; j < m; ++j) out[j] = out[j] + gk * (a[j] + b[j]);
      }
    }
    return;
  }
  float* __restrict keep = tmp;
  if (c.mode == 1) {
    std::memcpy(keep, d, static_cast<std::size_t>(m) * sizeof(float));  // previous original row
    for (std::int64_t i = 0; i < rows; ++i) {
      float* __restrict cur = d + i * m;
      const float* next = i + 1 < rows ? d + (i + 1) * m : nullptr;
      for (std::int64_t j = 0; j < m; ++j) {
        const float v = cur[j];
        const float nx = next != nullptr ? next[j] : v;
        cur[j] = (c.a * keep[j] + c.m * v) + c.a * nx;
        keep[j] = v;
      }
    }
    return;
  }
  std::memcpy(keep, d, static_cast<std::size_t>(m) * sizeof(float));  // w[-1..-3] = in[0]
  for (std::int64_t i = 0; i < rows; ++i) {
    float* __restrict cur = d + i * m;
    const float* w1 = i >= 1 ? d + (i - 1) * m : keep;
    const float* w2 = i >= 2 ? d + (i - 2) * m : keep;
    const float* w3 = i >= 3 ? d + (i - 3) * m : keep;
    for (std::int64_t j = 0; j < m; ++j) cur[j] = c.b * cur[j] + ((c.c1 * w1[j] + c.c2 * w2[j]) + c.c3 * w3[j]);
  }
  std::memcpy(keep, d + (rows - 1) * m, static_cast<std::size_t>(m) * sizeof(float));  // o[L..L+2] = w[L-1]
  for (std::int64_t i = rows - 1; i >= 0; --i) {
    float* __restrict cur = d + i * m;
    const float* o1 = i + 1 < rows ? d + (i + 1) * m : keep;
    const float* o2 = i + 2 < rows ? d + (i + 2) * m : keep;
    const float* o3 = i + 3 < rows ? d + (i + 3) * m : keep;
    for (std::int64_t j = 0; j < m; ++j) cur[j] = c.b * cur[j] + ((c.c1 * o1[j] + c.c2 * o2[j]) + c.c3 * o3[j]);
  }
}

// dst (cols x rows) = transpose of src (rows x cols).
void transpose(const float* __restrict src, float* __restrict dst, std::int64_t rows, std::int64_t cols) {
  constexpr std::int64_t kTile = 32;
  for (std::int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (std::int64_t c0 = 0; c0 < cols; c0 += kTile)
      for (std::int64_t r = r0; r < std::min(rows, r0 + kTile); ++r)
        for (std::int64_t c = c0; c < std::min(cols, c0 + kTile); ++c) dst[c * rows + r] = src[r * cols + c];
}

// Smooths plane ft (W x H, the transpose of the image plane) into f (H x W).
void smooth_transposed(float* ft, float* f, std::int64_t h, std::int64_t w, const SmoothCoef& c) {
  float* tmp = scratch_floats(scratch().rows, std::max(h, w));
  smooth_rows(ft, w, h, c, tmp);
  transpose(ft, f, w, h);
  smooth_rows(f, h, w, c, tmp);
}

// The displacement fields (dx, dy), each H x W, of elastic step `step` for stream `offset`.
void elastic_field(float* f, std::int64_t h, std::int64_t w, float alpha, const SmoothCoef& c, std::uint64_t seed,
                   std::uint64_t offset, std::int64_t step) {
  const std::int64_t hw = h * w, words = 2 * hw;
  float* ft = scratch_floats(scratch().field_t, words);
  const std::uint64_t first = step_block(step, kPixelBlock0);
  alignas(32) std::uint32_t lane_words[4 * kLanes];
  for (std::int64_t base = 0; base < words; base += 4 * kLanes) {
    philox_lanes(seed, offset, first + static_cast<std::uint64_t>(base / 4), lane_words);
    const std::int64_t n = std::min<std::int64_t>(4 * kLanes, words - base);
    for (std::int64_t k = 0; k < n; ++k) ft[base + k] = signed_unit(lane_words[k]);
  }
  for (int field = 0; field < 2; ++field) smooth_transposed(ft + field * hw, f + field * hw, h, w, c);
  for (std::int64_t i = 0; i < words; ++i) f[i] = alpha * f[i];
}

template <class T>
void fill_rects(T* img, const ImageShape& s, const StagePlan& st, const SampleStage& ss, const std::int32_t* rects,
                std::uint64_t seed, std::uint64_t offset) {
  const T fill = store_value<T>(st.fill);
  for (std::int32_t r = 0; r < ss.rect_count; ++r) {
    const std::int32_t* rc = rects + 4 * (ss.rect_begin + r);
    if (!st.random_fill) {  // rows of the box are contiguous runs in either layout
      for (std::int64_t p = 0; p < s.p; ++p)
        for (std::int64_t y = rc[1]; y < rc[3]; ++y) {
          T* row = img + p * s.plane() + (y * s.w + rc[0]) * s.q;
          std::fill(row, row + (rc[2] - rc[0]) * s.q, fill);
        }
      continue;
    }
    for (std::int64_t c = 0; c < s.p * s.q; ++c)
      for (std::int64_t y = rc[1]; y < rc[3]; ++y)
        for (std::int64_t x = rc[0]; x < rc[2]; ++x)
          img[s.offset(c, y, x)] = random_fill_value<T>(seed, offset, st.step, (c * s.h + y) * s.w + x);
  }
}

template <class T>
void add_noise(const T* src, T* dst, const ImageShape& s, float stddev, std::int64_t step, std::uint64_t seed,
               std::uint64_t offset) {
  const std::int64_t n = s.size(), hw = s.h * s.w;
  const std::uint64_t first = step_block(step, kPixelBlock0);
  alignas(32) std::uint32_t words[4 * kLanes];
  alignas(32) float z[4 * kLanes];
  if (s.q > 1 && hw % 4 == 0) {  // NHWC: 64 pixels at a time, the draws of each channel
    constexpr std::int64_t kChunk = 4 * kLanes;
    std::vector<float>& zc_store = scratch().rows;
    if (zc_store.size() < static_cast<std::size_t>(kChunk * s.q)) zc_store.resize(static_cast<std::size_t>(kChunk * s.q));
    float* zc = zc_store.data();
    for (std::int64_t p0 = 0; p0 < hw; p0 += kChunk) {
      for (std::int64_t c = 0; c < s.q; ++c) {
        philox_lanes(seed, offset, first + static_cast<std::uint64_t>((c * hw + p0) / 4), words);
        normals_from_words(words, zc + c * kChunk);
      }
      const std::int64_t m = std::min(kChunk, hw - p0);
      const T* sp = src + p0 * s.q;
      T* dp = dst + p0 * s.q;
      if (s.q == 3) {
        for (std::int64_t k = 0; k < m; ++k)
          for (std::int64_t c = 0; c < 3; ++c) dp[k * 3 + c] = noisy(sp[k * 3 + c], zc[c * kChunk + k], stddev);
      } else {
        for (std::int64_t k = 0; k < m; ++k)
          for (std::int64_t c = 0; c < s.q; ++c) dp[k * s.q + c] = noisy(sp[k * s.q + c], zc[c * kChunk + k], stddev);
      }
    }
    return;
  }
  for (std::int64_t base = 0; base < n; base += 4 * kLanes) {
    philox_lanes(seed, offset, first + static_cast<std::uint64_t>(base / 4), words);
    normals_from_words(words, z);
    const std::int64_t m = std::min<std::int64_t>(4 * kLanes, n - base);
    if (s.q == 1) {  // logical order is memory order
      for (std::int64_t k = 0; k < m; ++k) dst[base + k] = noisy(src[base + k], z[k], stddev);
    } else {  // logical element base + k is channel c at pixel yx (hw % 4 != 0 only)
      std::int64_t c = base / hw, yx = base % hw;
      for (std::int64_t k = 0; k < m; ++k) {
        const std::int64_t o = yx * s.q + c;
        dst[o] = noisy(src[o], z[k], stddev);
        if (++yx == hw) yx = 0, ++c;
      }
    }
  }
}

// dst[0 .. bytes) = src[0 .. bytes) with non-temporal stores from the first 32-byte boundary of
// dst: an output that goes to memory anyway is then not read into the cache first.
inline void stream_copy(void* dst, const void* src, std::size_t bytes) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
#if defined(__AVX2__)
  const std::size_t head = std::min(bytes, (32 - reinterpret_cast<std::uintptr_t>(d) % 32) % 32);
  std::memcpy(d, s, head);
  std::size_t i = head;
  for (; i + 32 <= bytes; i += 32)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
  std::memcpy(d + i, s + i, bytes - i);
#else
  std::memcpy(d, s, bytes);
#endif
}

// stream_out: the batch output is larger than the caches. The sample is then built in a
// thread-local image (cache-resident) and streamed to `out` in one contiguous copy, so the
// output lines are never read from memory before they are written; the caller fences.
template <class T>
void run_sample(const T* x, T* out, const AugmentPlan& plan, std::int64_t n, bool stream_out) {
  T* const final_out = out;
  thread_local std::vector<T> staging;
  const std::size_t out_count = static_cast<std::size_t>(plan.stages.back().out.size());
  if (stream_out) {
    if (staging.size() < out_count) staging.resize(out_count);
    out = staging.data();
  }
  const std::size_t ns = plan.stages.size();
  const std::uint64_t offset = plan.sample_offset + static_cast<std::uint64_t>(n);
  T* bufs[2] = {nullptr, nullptr};
  auto buffer = [&](std::int32_t code) -> T* {
    if (code == kBufX) return const_cast<T*>(x);
    if (code == kBufOut) return out;
    const int k = code == kBufScratch0 ? 0 : 1;
    if (bufs[k] == nullptr) bufs[k] = scratch_image<T>(k, plan.scratch);
    return bufs[k];
  };
  for (std::size_t i = 0; i < ns; ++i) {
    const StagePlan& st = plan.stages[i];
    const SampleStage& ss = plan.samples[static_cast<std::size_t>(n) * ns + i];
    const T* src = buffer(st.src);
    T* dst = buffer(st.dst);
    const std::size_t bytes = static_cast<std::size_t>(st.out.size()) * sizeof(T);
    switch (st.kind) {
      case StageKind::geometric: geometric(src, dst, st, ss); break;
      case StageKind::elastic: {
        if (ss.mode == 0) {
          std::memcpy(dst, src, bytes);
          break;
        }
        float* f = scratch_floats(scratch().field, 2 * st.in.h * st.in.w);
        elastic_field(f, st.in.h, st.in.w, st.alpha, st.smooth, plan.seed, offset, st.step);
        displace_image(src, dst, f, f + st.in.h * st.in.w, st.in, st.interp, st.border, st.fill);
        break;
      }
      case StageKind::fill:
        if (src != dst) std::memcpy(dst, src, bytes);
        if (ss.mode != 0) fill_rects(dst, st.in, st, ss, plan.rects.data(), plan.seed, offset);
        break;
      case StageKind::noise:
        if (ss.mode != 0) add_noise(src, dst, st.in, st.stddev, st.step, plan.seed, offset);
        else if (src != dst) std::memcpy(dst, src, bytes);
        break;
    }
  }
  if (stream_out) stream_copy(final_out, out, out_count * sizeof(T));
}

}  // namespace

void augment(const Tensor& x, const Tensor& out, const AugmentPlan& plan) {
  const std::int64_t in_size = x.numel() / plan.n, out_size = out.numel() / plan.n;
  if (plan.stages.empty()) {
    std::memcpy(out.data(), x.data(), x.nbytes());
    return;
  }
  const std::int64_t cost = std::max(in_size, out_size) * static_cast<std::int64_t>(plan.stages.size()) * 4;
  detail::dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, std::uint8_t>) {
      const T* xs = x.data_as<T>();
      T* os = out.data_as<T>();
      // Batch outputs past half the last-level cache go to memory anyway: stream them.
      const bool stream = out.nbytes() >= (std::size_t{16} << 20);
      parallel_tasks(plan.n, cost, [&](std::int64_t n) {
        run_sample(xs + n * in_size, os + n * out_size, plan, n, stream);
#if defined(__SSE2__)
        if (stream) _mm_sfence();  // this thread's streamed stores land before the op returns
#endif
      });
    }
  });
}

void gaussian_smooth(const Tensor& x, const Tensor& out, const SmoothCoef& coef) {
  const std::int64_t planes = x.size(0), h = x.size(1), w = x.size(2);
  const float* xs = x.data_as<float>();
  float* os = out.data_as<float>();
  parallel_tasks(planes, h * w * 16, [&](std::int64_t p) {
    float* ft = scratch_floats(scratch().field_t, h * w);
    transpose(xs + p * h * w, ft, h, w);
    smooth_transposed(ft, os + p * h * w, h, w, coef);
  });
}

void elastic_displacement(const Tensor& out, float alpha, const SmoothCoef& coef, std::uint64_t seed,
                          std::uint64_t sample_offset, std::int64_t step_index) {
  const std::int64_t n = out.size(0), h = out.size(2), w = out.size(3);
  float* os = out.data_as<float>();
  parallel_tasks(n, h * w * 32, [&](std::int64_t i) {
    elastic_field(os + i * 2 * h * w, h, w, alpha, coef, seed, sample_offset + static_cast<std::uint64_t>(i),
                  step_index);
  });
}

void displace(const Tensor& x, const Tensor& disp, const Tensor& out, const ImageShape& img, Interp interp,
              Border border, float fill) {
  const std::int64_t n = x.size(0), size = img.size(), hw = img.h * img.w;
  const float* ds = disp.data_as<float>();
  detail::dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, std::uint8_t>) {
      const T* xs = x.data_as<T>();
      T* os = out.data_as<T>();
      parallel_tasks(n, size * 8, [&](std::int64_t i) {
        displace_image(xs + i * size, os + i * size, ds + i * 2 * hw, ds + i * 2 * hw + hw, img, interp, border,
                       fill);
      });
    }
  });
}

}  // namespace seisoku::cpu
