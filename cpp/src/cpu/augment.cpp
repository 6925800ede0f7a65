// CPU kernels of the augmentation family. One task per sample (parallel_tasks over the
// batch): the sample runs its stages in order through two thread-local scratch images, so a
// sample's result depends only on its own plan. The per-pixel arithmetic is the shared code
// of kernels/augment.hpp that the CUDA twin runs too; the CPU adds two layouts of the same
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

#include "core/dispatch.hpp"
#include "kernels/augment.hpp"
#include "parallel.hpp"
#include "normal_lanes.hpp"
#include "philox_lanes.hpp"
#include "simd.hpp"

#if defined(__SSE__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {
namespace {

// Thread-local scratch: two images and the float work space of the elastic fields.
struct Scratch {
  std::vector<unsigned char> image[2];
  std::vector<float> field, field_t, rows, plane, work, source;
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
      // Mirrored rows are read backwards, and cropped rows with gaps, which the hardware
      // prefetchers follow poorly: ask for the source row two output rows ahead.
      if (y + 2 < o.h) {
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

// Per-row work space: source coordinates, first taps, weights (K rows of W), the offset of
// each pixel's first tap in the padded source and whether that offset is exact.
struct RowTaps {
  std::vector<float> sx, sy, wx, wy;
  std::vector<std::int32_t> kx, ky, base;
  std::vector<std::uint8_t> exact;
  void reserve(std::int64_t w, int k) {
    const auto n = static_cast<std::size_t>(w);
    if (sx.size() >= n) return;
    sx.resize(n), sy.resize(n), kx.resize(n), ky.resize(n), base.resize(n), exact.resize(n);
    wx.resize(n * static_cast<std::size_t>(k)), wy.resize(n * static_cast<std::size_t>(k));
  }
};

RowTaps& row_taps(std::int64_t w) {
  thread_local RowTaps t;
  t.reserve(w, 4);
  return t;
}

// A sample's source with `pad` pixels of border on every side, values of type S (float, or
// the image's own uint8 where the kernel converts after loading). A first tap k0 clamped
// into [-pad, n] reads, for constant and edge borders, exactly the values border_index
// gives for the unclamped taps (all fill, or all the edge pixel, once k0 < -pad or k0 > n
// with pad >= K), so every pixel reads memory without a branch; reflect is exact only for
// first taps already in that range.
template <class S>
struct Padded {
  const S* data = nullptr;
  std::int64_t pad = 0, pw = 0, ph = 0, row = 0, plane = 0;  // row, plane: values
};

// The int32 offsets of a padded image fit when its size does (with the 4 bytes of slack).
inline bool padded_fits(const ImageShape& in, std::int64_t pad) {
  return (in.w + 2 * pad) * (in.h + 2 * pad) * in.p * in.q < (std::int64_t{1} << 31) - 64;
}

template <class S, class T>
Padded<S> pad_source(const T* src, const ImageShape& in, std::int64_t pad, Border border, float fill,
                     std::vector<S>& buf) {
  Padded<S> pd;
  pd.pad = pad, pd.pw = in.w + 2 * pad, pd.ph = in.h + 2 * pad, pd.row = pd.pw * in.q, pd.plane = pd.ph * pd.row;
  const auto total = static_cast<std::size_t>(pd.plane * in.p + 16);  // slack: 4-byte loads of the last pixel
  if (buf.size() < total) buf.resize(total);
  const std::int64_t q = in.q, row_values = in.w * in.q;
  const S fv = static_cast<S>(fill);  // uint8 fills are already whole and in range
  std::int64_t cols[2 * 4];           // source column of each padding pixel (left, then right)
  for (std::int64_t k = 0; k < pad; ++k) {  // pad = K <= 4
    cols[k] = border_index(k - pad, in.w, border);
    cols[pad + k] = border_index(in.w + k, in.w, border);
  }
  for (std::int64_t p = 0; p < in.p; ++p)
    for (std::int64_t yy = 0; yy < pd.ph; ++yy) {
      S* __restrict d = buf.data() + p * pd.plane + yy * pd.row;
      const std::int64_t sy = border_index(yy - pad, in.h, border);
      if (sy < 0) {
        std::fill(d, d + pd.row, fv);
        continue;
      }
      const T* __restrict s = src + p * in.plane() + sy * in.w * q;
      for (std::int64_t k = 0; k < pad; ++k)
        for (std::int64_t c = 0; c < q; ++c) {
          const std::int64_t l = cols[k], r = cols[pad + k];
          d[k * q + c] = l < 0 ? fv : static_cast<S>(s[l * q + c]);
          d[(pad + in.w + k) * q + c] = r < 0 ? fv : static_cast<S>(s[r * q + c]);
        }
      S* __restrict m = d + pad * q;
      if constexpr (std::is_same_v<S, T>) {
        std::memcpy(m, s, static_cast<std::size_t>(row_values) * sizeof(S));
      } else {
        for (std::int64_t i = 0; i < row_values; ++i) m[i] = static_cast<S>(s[i]);
      }
    }
  pd.data = buf.data();
  return pd;
}

// Output pixel (y, x) from the padded source, first tap at offset b: resample_pixel's
// arithmetic (per value, sum over tap rows j of wy[j] * sum over tap columns i of wx[i] v).
template <int K, class S, class T>
inline void padded_pixel(const Padded<S>& pd, std::int64_t b, T* dst, const ImageShape& in, const ImageShape& out,
                         std::int64_t y, std::int64_t x, const float* wx, const float* wy, std::int64_t stride) {
  const std::int64_t q = in.q;
  T* d = dst + (y * out.w + x) * q;
  for (std::int64_t p = 0; p < in.p; ++p)
    for (std::int64_t c = 0; c < q; ++c) {
      const S* base = pd.data + p * pd.plane + b + c;
      float acc = 0.0f;
      for (int j = 0; j < K; ++j) {
        float row = 0.0f;
        for (int i = 0; i < K; ++i) row = row + wx[i * stride] * static_cast<float>(base[j * pd.row + i * q]);
        acc = acc + wy[j * stride] * row;
      }
      d[p * out.plane() + c] = store_value<T>(acc);
    }
}

#if defined(__AVX2__)
// store_value<uint8> on 8 lanes, as int32.
inline __m256i store_bytes8(__m256 acc) {
  acc = _mm256_min_ps(_mm256_max_ps(acc, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));  // NaN -> 0
  return _mm256_cvttps_epi32(_mm256_add_ps(acc, _mm256_set1_ps(0.5f)));
}

// Output pixels x .. x + 7 of row y from a float padded source: per value the gathers of
// the K x K taps and padded_pixel's operations in the same order.
template <int K, int Q, class T>
inline void padded8(const Padded<float>& pd, const std::int32_t* b, T* dst, const ImageShape& in,
                    const ImageShape& out, std::int64_t y, std::int64_t x, const float* wx, const float* wy,
                    std::int64_t stride) {
  const std::int64_t q = Q > 0 ? Q : in.q;
  const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
  __m256 ax[K], by[K];
  for (int i = 0; i < K; ++i) ax[i] = _mm256_loadu_ps(wx + i * stride), by[i] = _mm256_loadu_ps(wy + i * stride);
  alignas(32) float res[8];
  alignas(32) std::int32_t ires[8];
  for (std::int64_t p = 0; p < in.p; ++p)
    for (std::int64_t c = 0; c < q; ++c) {
      const float* base = pd.data + p * pd.plane + c;
      __m256 acc = _mm256_setzero_ps();
      for (int j = 0; j < K; ++j) {
        __m256 row = _mm256_setzero_ps();
        for (int i = 0; i < K; ++i)
          row = _mm256_add_ps(row, _mm256_mul_ps(ax[i], _mm256_i32gather_ps(base + j * pd.row + i * q, bv, 4)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(by[j], row));
      }
      T* d = dst + p * out.plane() + (y * out.w + x) * q + c;
      if constexpr (std::is_same_v<T, float>) {
        if (q == 1) {
          _mm256_storeu_ps(d, acc);
        } else {
          _mm256_store_ps(res, acc);
          for (int i = 0; i < 8; ++i) d[i * q] = res[i];
        }
      } else {
        const __m256i iv = store_bytes8(acc);
        if (q == 1) {
          const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(iv), _mm256_extracti128_si256(iv, 1));
          _mm_storel_epi64(reinterpret_cast<__m128i*>(d), _mm_packus_epi16(w16, w16));
        } else {
          _mm256_store_si256(reinterpret_cast<__m256i*>(ires), iv);
          for (int i = 0; i < 8; ++i) d[i * q] = static_cast<T>(ires[i]);
        }
      }
    }
}

// Both taps of a bilinear row for 8 NHWC RGB pixels: bytes [b, b + 8) of each pixel's first
// tap hold the 3 values of both taps (6 bytes). Plain loads, which are much faster than
// gathers on some cores; pixels 0, 1, 4, 5 go to `a`, 2, 3, 6, 7 to `b`, so that
// pair_channel can put them back in order with in-lane shuffles.
inline void load_pairs_rgb(const std::uint8_t* row, const std::int32_t* b, __m256i* a, __m256i* c) {
  auto l8 = [row](std::int32_t o) {
    long long v;
    std::memcpy(&v, row + o, 8);
    return v;
  };
  *a = _mm256_set_epi64x(l8(b[5]), l8(b[4]), l8(b[1]), l8(b[0]));
  *c = _mm256_set_epi64x(l8(b[7]), l8(b[6]), l8(b[3]), l8(b[2]));
}

// Byte k (0 .. 5: tap k / 3, channel k % 3) of the 8 pixels of load_pairs_rgb, as floats:
// in each 128-bit lane, dwords 0 and 1 from the two qwords of `a`, dwords 2 and 3 from `c`.
template <int K>
inline __m256 pair_channel(__m256i a, __m256i c) {
  constexpr char z = -128;
  const __m256i lo = _mm256_setr_epi8(K, z, z, z, 8 + K, z, z, z, z, z, z, z, z, z, z, z,  //
                                      K, z, z, z, 8 + K, z, z, z, z, z, z, z, z, z, z, z);
  const __m256i hi = _mm256_setr_epi8(z, z, z, z, z, z, z, z, K, z, z, z, 8 + K, z, z, z,  //
                                      z, z, z, z, z, z, z, z, K, z, z, z, 8 + K, z, z, z);
  return _mm256_cvtepi32_ps(_mm256_or_si256(_mm256_shuffle_epi8(a, lo), _mm256_shuffle_epi8(c, hi)));
}

// Channel C of 8 bilinear pixels from the pairs of their two tap rows: padded_pixel's
// operations, as store_value<uint8> int32 lanes shifted to byte C. Its leading 0 + w v is
// left out: with v >= 0 and bilinear weights in [0, 1] the product is never -0, so adding
// +0 changes nothing.
template <int C>
inline __m256i bilinear_channel(const __m256i* a, const __m256i* c, __m256 ax0, __m256 ax1, __m256 by0, __m256 by1) {
  const __m256 r0 = _mm256_add_ps(_mm256_mul_ps(ax0, pair_channel<C>(a[0], c[0])),
                                  _mm256_mul_ps(ax1, pair_channel<3 + C>(a[0], c[0])));
  const __m256 r1 = _mm256_add_ps(_mm256_mul_ps(ax0, pair_channel<C>(a[1], c[1])),
                                  _mm256_mul_ps(ax1, pair_channel<3 + C>(a[1], c[1])));
  const __m256 acc = _mm256_add_ps(_mm256_mul_ps(by0, r0), _mm256_mul_ps(by1, r1));
  return _mm256_slli_epi32(store_bytes8(acc), 8 * C);
}

// Stores the low 24 bytes of v at d. With `room` (8 more bytes at d + 24 that are written
// later anyway) as one 32-byte store.
inline void store24(std::uint8_t* d, __m256i v, bool room) {
  if (room) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), v);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm256_castsi256_si128(v));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 16), _mm256_extracti128_si256(v, 1));
  }
}

// Stores 8 RGB pixels (R | G << 8 | B << 16 in each int32 lane) as 24 bytes at d.
inline void store_rgb8(std::uint8_t* d, __m256i packed, bool room) {
  // 4 pixels of 3 bytes in the low 12 bytes of each 128-bit lane, then the two lanes joined.
  const __m256i squeeze = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6,
                                           8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  packed = _mm256_shuffle_epi8(packed, squeeze);
  store24(d, _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7)), room);
}

// The same for 3-channel uint8 pixels in one plane (NHWC RGB) from a uint8 padded source:
// each tap of a pixel is one 4-byte gather holding its 3 values (the 4th byte is unused), so
// 8 pixels need K x K gathers for all channels.
template <int K>
inline void padded8_rgb(const Padded<std::uint8_t>& pd, const std::int32_t* b, std::uint8_t* d, const float* wx,
                        const float* wy, std::int64_t stride, bool room) {
  __m256 ax[K], by[K];
  for (int i = 0; i < K; ++i) ax[i] = _mm256_loadu_ps(wx + i * stride), by[i] = _mm256_loadu_ps(wy + i * stride);
  __m256i packed = _mm256_setzero_si256();
  if constexpr (K == 2) {
    __m256i a[2], c2[2];
    load_pairs_rgb(pd.data, b, &a[0], &c2[0]);
    load_pairs_rgb(pd.data + pd.row, b, &a[1], &c2[1]);
    packed = _mm256_or_si256(_mm256_or_si256(bilinear_channel<0>(a, c2, ax[0], ax[1], by[0], by[1]),
                                             bilinear_channel<1>(a, c2, ax[0], ax[1], by[0], by[1])),
                             bilinear_channel<2>(a, c2, ax[0], ax[1], by[0], by[1]));
  } else {
    const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    __m256i g[K][K];
    for (int j = 0; j < K; ++j)
      for (int i = 0; i < K; ++i)
        g[j][i] = _mm256_i32gather_epi32(reinterpret_cast<const int*>(pd.data + j * pd.row + i * 3), bv, 1);
    const __m256i low = _mm256_set1_epi32(0xff);
    for (int c = 0; c < 3; ++c) {
      __m256 acc = _mm256_setzero_ps();
      for (int j = 0; j < K; ++j) {
        __m256 row = _mm256_setzero_ps();
        for (int i = 0; i < K; ++i) {
          const __m256 v = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(g[j][i], 8 * c), low));
          row = _mm256_add_ps(row, _mm256_mul_ps(ax[i], v));
        }
        acc = _mm256_add_ps(acc, _mm256_mul_ps(by[j], row));
      }
      packed = _mm256_or_si256(packed, _mm256_slli_epi32(store_bytes8(acc), 8 * c));
    }
  }
  store_rgb8(d, packed, room);
}
#endif

// Output row y read at (t.sx[x], t.sy[x]) from the padded source: weights and clamped first
// taps for the whole row (vectorized loops), then 8 pixels at a time through the gathers,
// the rest pixel by pixel; with a reflect border, pixels whose first taps lie beyond the
// padding go through resample_pixel on the original source. The same arithmetic as
// resample_pixel everywhere.
template <int K, int Q, class S, class T>
void resample_row(const Padded<S>& pd, const T* src, T* dst, const ImageShape& in, const ImageShape& out,
                  std::int64_t y, RowTaps& t, Border border, float fill) {
  static_assert(std::is_same_v<S, float> || Q == 3, "uint8 padded sources are NHWC RGB only (padded8_rgb)");
  const std::int64_t w = out.w;
  float* __restrict wx = t.wx.data();
  float* __restrict wy = t.wy.data();
  std::int32_t* __restrict kx = t.kx.data();
  std::int32_t* __restrict ky = t.ky.data();
  std::int32_t* __restrict base = t.base.data();
  std::uint8_t* __restrict exact = t.exact.data();
  row_weights<K>(t.sx.data(), w, wx, kx);
  row_weights<K>(t.sy.data(), w, wy, ky);
  const auto pad = static_cast<std::int32_t>(pd.pad), iw = static_cast<std::int32_t>(in.w);
  const auto ih = static_cast<std::int32_t>(in.h), pw = static_cast<std::int32_t>(pd.pw);
  const auto q = static_cast<std::int32_t>(Q > 0 ? Q : in.q);
  for (std::int64_t x = 0; x < w; ++x) {
    const std::int32_t cx = std::min(std::max(kx[x], -pad), iw), cy = std::min(std::max(ky[x], -pad), ih);
    exact[x] = static_cast<std::uint8_t>((cx == kx[x]) & (cy == ky[x]));
    base[x] = ((cy + pad) * pw + (cx + pad)) * q;
  }
  const bool clamped_exact = border != Border::reflect;
  auto one = [&](std::int64_t x) {
    if (clamped_exact || exact[x]) padded_pixel<K>(pd, base[x], dst, in, out, y, x, wx + x, wy + x, w);
    else resample_pixel<K>(src, dst, in, out, y, x, t.sx[x], t.sy[x], border, fill);
  };
  std::int64_t x = 0;
#if defined(__AVX2__)
  for (; x + 8 <= w; x += 8) {
    if (!clamped_exact) {
      std::uint64_t all;
      std::memcpy(&all, exact + x, 8);
      if (all != 0x0101010101010101ull) {
        for (std::int64_t i = x; i < x + 8; ++i) one(i);
        continue;
      }
    }
    if constexpr (std::is_same_v<S, float>) {
      padded8<K, Q>(pd, base + x, dst, in, out, y, x, wx + x, wy + x, w);
    } else if constexpr (Q == 3) {
      padded8_rgb<K>(pd, base + x, dst + (y * out.w + x) * 3, wx + x, wy + x, w, x + 11 <= w);
    }
  }
#endif
  for (; x < w; ++x) one(x);
}

// A resampling of one image through the padded source: uint8 NHWC RGB keeps its bytes (the
// gathers convert), every other uint8 image is converted to float once.
template <int K, class T, class RowFn>
void resample_image(const T* src, T* dst, const ImageShape& in, const ImageShape& out, Border border, float fill,
                    RowFn&& coords) {
  RowTaps& t = row_taps(out.w);
  thread_local std::vector<float> fbuf;
  thread_local std::vector<std::uint8_t> bbuf;
  auto rows = [&](const auto& pd, auto q_tag) {
    constexpr int Q = decltype(q_tag)::value;
    for (std::int64_t y = 0; y < out.h; ++y) {
      coords(y, t.sx.data(), t.sy.data());
      resample_row<K, Q>(pd, src, dst, in, out, y, t, border, fill);
    }
  };
  if constexpr (std::is_same_v<T, std::uint8_t>) {
#if defined(__AVX2__)
    if (in.q == 3 && in.p == 1) {
      rows(pad_source(src, in, K, border, fill, bbuf), std::integral_constant<int, 3>{});
      return;
    }
#endif
  }
  const Padded<float> pd = pad_source(src, in, K, border, fill, fbuf);
  if (in.q == 1) rows(pd, std::integral_constant<int, 1>{});
  else if (in.q == 3) rows(pd, std::integral_constant<int, 3>{});
  else rows(pd, std::integral_constant<int, 0>{});
}

// Fallback for images whose padded size passes int32 offsets: resample_pixel per pixel.
template <int K, class T, class RowFn>
void resample_image_scalar(const T* src, T* dst, const ImageShape& in, const ImageShape& out, Border border,
                           float fill, RowFn&& coords) {
  RowTaps& t = row_taps(out.w);
  for (std::int64_t y = 0; y < out.h; ++y) {
    coords(y, t.sx.data(), t.sy.data());
    for (std::int64_t x = 0; x < out.w; ++x)
      resample_pixel<K>(src, dst, in, out, y, x, t.sx[x], t.sy[x], border, fill);
  }
}

template <int K, class T, class RowFn>
void resample(const T* src, T* dst, const ImageShape& in, const ImageShape& out, Border border, float fill,
              RowFn&& coords) {
  if (padded_fits(in, K)) resample_image<K>(src, dst, in, out, border, fill, coords);
  else resample_image_scalar<K>(src, dst, in, out, border, fill, coords);
}

template <int K, class T>
void geometric_affine(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  const float m0 = ss.m[0], m1 = ss.m[1], m2 = ss.m[2], m3 = ss.m[3], m4 = ss.m[4], m5 = ss.m[5];
  const std::int64_t w = st.out.w;
  resample<K>(src, dst, st.in, st.out, st.border, st.fill,
              [=](std::int64_t y, float* __restrict sx, float* __restrict sy) {
                const float yf = static_cast<float>(y), a = m1 * yf, b = m4 * yf;
                for (std::int32_t x = 0; x < w; ++x) {  // affine_source, with m1 y and m4 y hoisted
                  const float xf = static_cast<float>(x);
                  sx[x] = (m0 * xf + a) + m2;
                  sy[x] = (m3 * xf + b) + m5;
                }
              });
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
  thread_local SeparableScratch tls;
  SeparableScratch& sc = tls;  // one TLS lookup, not one per pixel
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
      for (std::int64_t k = 0; k < row_len; ++k) {
        float acc = 0.0f;
        for (int j = 0; j < K; ++j) acc = acc + wy[j] * rows[j][k];
        d[k] = store_value<T>(acc);
      }
    }
  }
}

#if defined(__AVX2__)
// Byte shuffles that gather the two taps of 8 values from 32 bytes at `first` of a row.
struct ByteGather {
  std::int32_t first = 0;
  bool fits = false;
  std::int8_t lo[16], hi[16];
};

// 3-channel uint8 pixels in one plane (NHWC RGB), axis-aligned bilinear map: each source
// row that an output row reads is padded (the columns it needs only) and interpolated along
// x once, into a row of floats in output value order, then every output row combines its
// two filtered rows. Per value this is resample_pixel's arithmetic:
// h_j = (0 + wx0 v_j0) + wx1 v_j1, acc = (0 + wy0 h_0) + wy1 h_1.
void separable_rgb(const std::uint8_t* src, std::uint8_t* dst, const StagePlan& st, const SampleStage& ss) {
  thread_local std::vector<std::uint8_t> row_buf;
  thread_local std::vector<float> coord, hbuf, axis_w[2], value_w;
  thread_local std::vector<std::int32_t> axis_k[2], value_o;
  thread_local std::vector<ByteGather> gather;
  const ImageShape &in = st.in, &o = st.out;
  const std::int64_t w = o.w, h = o.h, w8 = (w + 7) / 8 * 8;
  // Weights (2 rows of n) and first taps of the columns (for y = 0) and of the rows (for
  // x = 0), as affine_source gives them.
  for (int a = 0; a < 2; ++a) {
    const std::int64_t n = a == 0 ? w : h;
    coord.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      float sx, sy;
      affine_source(ss.m, a == 0 ? i : 0, a == 0 ? 0 : i, &sx, &sy);
      coord[static_cast<std::size_t>(i)] = a == 0 ? sx : sy;
    }
    axis_w[a].resize(static_cast<std::size_t>(2 * n));
    axis_k[a].resize(static_cast<std::size_t>(n));
    row_weights<2>(coord.data(), n, axis_w[a].data(), axis_k[a].data());
  }
  const float* wx = axis_w[0].data();
  const float* wy = axis_w[1].data();
  const auto iw = static_cast<std::int32_t>(in.w), ih = static_cast<std::int32_t>(in.h);
  // Horizontal pass in value order (value k = channel k % 3 of output column k / 3; the
  // columns past w repeat the last one): value k reads bytes o0[k] and o0[k] + 3 of the
  // source row padded by 2 pixels (first taps clamped into [-2, iw], exact for constant and
  // edge borders as in pad_source). Only the padded columns [lo, hi] that the taps read are
  // built. A group of 8 values whose bytes lie within 32 of `first` (always, unless the map
  // shrinks the row more than about 2.5 times) gathers them with two 16-byte loads and byte
  // shuffles; other groups read them one by one.
  const std::int64_t n = 3 * w8, groups = n / 8;
  value_w.resize(static_cast<std::size_t>(2 * n));
  value_o.resize(static_cast<std::size_t>(n));
  std::int32_t lo = iw + 2, hi = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t x = std::min(k / 3, w - 1);
    const std::int32_t pc = std::min(std::max(axis_k[0][static_cast<std::size_t>(x)], -2), iw) + 2;
    lo = std::min(lo, pc), hi = std::max(hi, pc + 1);
    value_o[static_cast<std::size_t>(k)] = pc * 3 + static_cast<std::int32_t>(k % 3);
    value_w[static_cast<std::size_t>(k)] = wx[x];
    value_w[static_cast<std::size_t>(n + k)] = wx[w + x];
  }
  gather.resize(static_cast<std::size_t>(groups));
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int32_t* o = value_o.data() + 8 * g;
    ByteGather& bg = gather[static_cast<std::size_t>(g)];
    bg.first = *std::min_element(o, o + 8);
    bg.fits = *std::max_element(o, o + 8) + 3 - bg.first < 32;
    for (int i = 0; i < 8 && bg.fits; ++i)
      for (int t = 0; t < 2; ++t) {  // byte i of the low half: tap 0, of the high half: tap 1
        const std::int32_t at = o[i] + 3 * t - bg.first;
        bg.lo[8 * t + i] = static_cast<std::int8_t>(at < 16 ? at : -128);
        bg.hi[8 * t + i] = static_cast<std::int8_t>(at >= 16 ? at - 16 : -128);
      }
  }
  row_buf.resize(static_cast<std::size_t>((iw + 4) * 3 + 48));  // slack: the 32-byte windows of the last taps
  std::uint8_t* const row = row_buf.data();
  const std::uint8_t fill = static_cast<std::uint8_t>(st.fill);  // already whole and in range
  const std::int32_t inner_lo = std::max(lo, 2), inner_hi = std::min(hi, iw + 1);  // padded columns inside
  auto build_row = [&](std::int32_t r) {  // padded row r, columns [lo, hi]
    // The source rows are read once each, mostly in order, with a long pause between them:
    // ask for the row two ahead, which the hardware prefetchers do not.
    const std::int64_t ahead = border_index(r, ih, st.border);
    if (ahead >= 0 && inner_lo <= inner_hi) {
      const char* a = reinterpret_cast<const char*>(src + (ahead * in.w + inner_lo - 2) * 3);
      const std::int64_t bytes = (inner_hi - inner_lo + 1) * 3;
      for (std::int64_t b = 0; b < bytes; b += 64) _mm_prefetch(a + b, _MM_HINT_T0);
      _mm_prefetch(a + bytes - 1, _MM_HINT_T0);
    }
    const std::int64_t sy = border_index(r - 2, ih, st.border);
    if (sy < 0) {
      std::memset(row + lo * 3, fill, static_cast<std::size_t>((hi - lo + 1) * 3));
      return;
    }
    const std::uint8_t* srow = src + sy * in.w * 3;
    for (std::int32_t pc = lo; pc <= hi; ++pc) {
      if (pc == inner_lo && inner_lo <= inner_hi) {
        std::memcpy(row + pc * 3, srow + (pc - 2) * 3, static_cast<std::size_t>((inner_hi - inner_lo + 1) * 3));
        pc = inner_hi;
        continue;
      }
      const std::int64_t sx = border_index(pc - 2, iw, st.border);
      for (int c = 0; c < 3; ++c) row[pc * 3 + c] = sx < 0 ? fill : srow[sx * 3 + c];
    }
  };
  const float* vw0 = value_w.data();
  const float* vw1 = value_w.data() + n;
  // Filtered rows: padded row r (0 .. ih + 3) in slot r % 4 of hbuf, n values each (slots of
  // n rounded up to 32 for the vertical pass's blocks), which stays in L1. The output rows ask
  // for rows r0 and r0 + 1 with r0 monotone in y, so a row is only replaced by one at least 4
  // further on, after its last use.
  constexpr std::int32_t kSlots = 4;
  const std::int64_t slot = (n + 31) / 32 * 32;
  std::int32_t slot_row[kSlots] = {-1, -1, -1, -1};
  if (hbuf.size() < static_cast<std::size_t>(slot * kSlots)) hbuf.resize(static_cast<std::size_t>(slot * kSlots));
  auto filtered = [&](std::int32_t r) -> const float* {
    float* hr = hbuf.data() + (r % kSlots) * slot;
    if (slot_row[r % kSlots] == r) return hr;
    slot_row[r % kSlots] = r;
    build_row(r);
    for (std::int64_t g = 0; g < groups; ++g) {
      const ByteGather& bg = gather[static_cast<std::size_t>(g)];
      __m256 v0, v1;
      if (bg.fits) {
        const std::uint8_t* at = row + bg.first;
        const __m128i t = _mm_or_si128(
            _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(bg.lo))),
            _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at + 16)),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(bg.hi))));
        v0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(t));
        v1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(t, 8)));
      } else {
        alignas(32) std::int32_t b0[8], b1[8];
        for (int i = 0; i < 8; ++i) {
          const std::int32_t o = value_o[static_cast<std::size_t>(8 * g + i)];
          b0[i] = row[o], b1[i] = row[o + 3];
        }
        v0 = _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(b0)));
        v1 = _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(b1)));
      }
      // (0 + w0 v0) + w1 v1 without the 0 +, as in bilinear_channel.
      _mm256_storeu_ps(hr + 8 * g, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(vw0 + 8 * g), v0),
                                                 _mm256_mul_ps(_mm256_loadu_ps(vw1 + 8 * g), v1)));
    }
    return hr;
  };
  alignas(32) std::uint8_t tail[32];
  const std::int64_t len = 3 * w;
  for (std::int64_t y = 0; y < h; ++y) {
    const std::int32_t ky = axis_k[1][static_cast<std::size_t>(y)];
    const std::int32_t r0 = std::min(std::max(ky, -2), ih) + 2;
    const float* h0 = filtered(r0);
    const float* h1 = filtered(r0 + 1);
    const __m256 b0 = _mm256_set1_ps(wy[y]), b1 = _mm256_set1_ps(wy[h + y]);
    // 32 values at a time into one 32-byte store (the last block through `tail`; the slots
    // hold the values past n that it reads).
    auto block = [&](std::int64_t k) {
      auto values = [&](std::int64_t at) {
        return store_bytes8(_mm256_add_ps(_mm256_mul_ps(b0, _mm256_loadu_ps(h0 + at)),
                                          _mm256_mul_ps(b1, _mm256_loadu_ps(h1 + at))));
      };
      // Bytes per 128-bit lane: 4 of each of the four vectors' lanes 0-3, then of 4-7.
      const __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(values(k), values(k + 8)),
                                                _mm256_packus_epi32(values(k + 16), values(k + 24)));
      return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    };
    std::uint8_t* drow = dst + y * len;
    std::int64_t k = 0;
    for (; k + 32 <= len; k += 32) _mm256_storeu_si256(reinterpret_cast<__m256i*>(drow + k), block(k));
    if (k < len) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(tail), block(k));
      std::memcpy(drow + k, tail, static_cast<std::size_t>(len - k));
    }
  }
}
#endif

template <class T>
void geometric(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  switch (ss.mode) {
    case kGeoCopy: std::memcpy(dst, src, static_cast<std::size_t>(st.out.size()) * sizeof(T)); return;
    case kGeoRows: geometric_rows(src, dst, st, ss); return;
    case kGeoNearest: geometric_affine<1>(src, dst, st, ss); return;
    default: {
      const bool axis = ss.m[1] == 0.0f && ss.m[3] == 0.0f;
      if (st.interp == Interp::nearest) geometric_affine<1>(src, dst, st, ss);
      else if (st.interp == Interp::bilinear) {
#if defined(__AVX2__)
        if constexpr (std::is_same_v<T, std::uint8_t>) {
          if (axis && st.in.q == 3 && st.in.p == 1 && st.border != Border::reflect && padded_fits(st.in, 2)) {
            separable_rgb(src, dst, st, ss);
            return;
          }
        }
#endif
        axis ? geometric_separable<2>(src, dst, st, ss) : geometric_affine<2>(src, dst, st, ss);
      }
      else axis ? geometric_separable<4>(src, dst, st, ss) : geometric_affine<4>(src, dst, st, ss);
    }
  }
}

template <int K, class T>
void displace_k(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img, Border border,
                float fill) {
  const std::int64_t w = img.w;
  resample<K>(src, dst, img, img, border, fill, [=](std::int64_t y, float* __restrict sx, float* __restrict sy) {
    const float yf = static_cast<float>(y);
    const float* rdx = dx + y * w;
    const float* rdy = dy + y * w;
    for (std::int64_t x = 0; x < w; ++x) sx[x] = static_cast<float>(x) + rdx[x], sy[x] = yf + rdy[x];
  });
}

template <class T>
void displace_image(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img, Interp interp,
                    Border border, float fill) {
  if (interp == Interp::nearest) displace_k<1>(src, dst, dx, dy, img, border, fill);
  else if (interp == Interp::bilinear) displace_k<2>(src, dst, dx, dy, img, border, fill);
  else displace_k<4>(src, dst, dx, dy, img, border, fill);
}

// ---- Gaussian smoothing: smooth_line on every column of a rows x m plane at once --------------
// The recursion runs down the rows; the columns are independent lines, taken NV vectors at a
// time with the filter state in registers. A plane whose width is not a multiple of the block
// ends with a block that overlaps the one before: those columns are computed twice, to the
// same values.

using HalfFloats = float __attribute__((vector_size(kVectorBytes / 2)));

template <class V, class R>
inline V load_lanes(const float* p) {
  if constexpr (std::is_same_v<R, float>) return vload<V>(p);
  else return __builtin_convertvector(vload<HalfFloats>(p), V);
}

// smooth_line_recursive<R> on columns [0, NV * lanes) of the plane.
template <class R, int NV>
void recursive_block(const float* __restrict src, float* __restrict dst, R* __restrict work, std::int64_t rows,
                     std::int64_t m, const SmoothCoef& c, float scale) {
  using V = typename Simd<R>::V;
  constexpr int kL = sizeof(V) / sizeof(R);
  constexpr int kS = kSmoothSections;
  V c0[kS], c1[kS], e0[kS], e1[kS], d1[kS], d2[kS], u1[kS][NV], u2[kS][NV], xp[NV];
  for (int k = 0; k < kS; ++k) {
    const SmoothSection& s = c.s[k];
    c0[k] = vsplat<V>(static_cast<R>(s.c0)), c1[k] = vsplat<V>(static_cast<R>(s.c1));
    e0[k] = vsplat<V>(static_cast<R>(s.e0)), e1[k] = vsplat<V>(static_cast<R>(s.e1));
    d1[k] = vsplat<V>(static_cast<R>(s.d1)), d2[k] = vsplat<V>(static_cast<R>(s.d2));
  }
  for (int l = 0; l < NV; ++l) {
    xp[l] = load_lanes<V, R>(src + l * kL);
    for (int k = 0; k < kS; ++k) u1[k][l] = u2[k][l] = vsplat<V>(static_cast<R>(c.s[k].gc)) * xp[l];
  }
  for (std::int64_t i = 0; i < rows; ++i)
    for (int l = 0; l < NV; ++l) {
      const V x = load_lanes<V, R>(src + i * m + l * kL);
      V u[kS];
      for (int k = 0; k < kS; ++k) {
        u[k] = ((c0[k] * x + c1[k] * xp[l]) + d1[k] * u1[k][l]) + d2[k] * u2[k][l];
        u2[k][l] = u1[k][l], u1[k][l] = u[k];
      }
      vstore(work + i * m + l * kL, (u[0] + u[1]) + u[2]);
      xp[l] = x;
    }
  V x1[NV], x2[NV];
  for (int l = 0; l < NV; ++l) {
    x1[l] = x2[l] = load_lanes<V, R>(src + (rows - 1) * m + l * kL);
    for (int k = 0; k < kS; ++k) u1[k][l] = u2[k][l] = vsplat<V>(static_cast<R>(c.s[k].ga)) * x1[l];
  }
  const auto sv = vsplat<typename Simd<float>::V>(scale);
  const auto sh = vsplat<HalfFloats>(scale);
  for (std::int64_t i = rows - 1; i >= 0; --i)
    for (int l = 0; l < NV; ++l) {
      V v[kS];
      for (int k = 0; k < kS; ++k) {
        v[k] = ((e0[k] * x1[l] + e1[k] * x2[l]) + d1[k] * u1[k][l]) + d2[k] * u2[k][l];
        u2[k][l] = u1[k][l], u1[k][l] = v[k];
      }
      const V sum = vload<V>(work + i * m + l * kL) + ((v[0] + v[1]) + v[2]);
      float* d = dst + i * m + l * kL;
      if constexpr (std::is_same_v<R, float>) {
        vstore(d, sv * sum);
      } else {
        vstore(d, sh * __builtin_convertvector(sum, HalfFloats));
      }
      x2[l] = x1[l], x1[l] = load_lanes<V, R>(src + i * m + l * kL);
    }
}

// smooth_line_direct on columns [0, NV * lanes).
template <int NV>
void direct_block(const float* __restrict src, float* __restrict dst, std::int64_t rows, std::int64_t m,
                  const SmoothCoef& c, float scale) {
  using V = Simd<float>::V;
  constexpr int kL = sizeof(V) / sizeof(float);
  const V g0 = vsplat<V>(c.g[0]), sv = vsplat<V>(scale);
  for (std::int64_t i = 0; i < rows; ++i) {
    V acc[NV];
    for (int l = 0; l < NV; ++l) acc[l] = g0 * vload<V>(src + i * m + l * kL);
    for (int k = 1; k <= c.radius; ++k) {
      const float* a = src + std::max<std::int64_t>(i - k, 0) * m;
      const float* b = src + std::min<std::int64_t>(i + k, rows - 1) * m;
      const V gk = vsplat<V>(c.g[k]);
      for (int l = 0; l < NV; ++l) acc[l] = acc[l] + gk * (vload<V>(a + l * kL) + vload<V>(b + l * kL));
    }
    for (int l = 0; l < NV; ++l) vstore(dst + i * m + l * kL, sv * acc[l]);
  }
}

// Blocks of NV vectors over the m columns (the last one overlapping), or column by column
// when the plane is narrower than one vector.
template <class R, int NV, class Block, class One>
void over_columns(std::int64_t m, Block&& block, One&& one) {
  constexpr std::int64_t kB = NV * static_cast<std::int64_t>(sizeof(typename Simd<R>::V) / sizeof(R));
  if constexpr (NV > 1) {
    if (m < kB) return over_columns<R, NV / 2>(m, block, one);
  }
  if (m < kB) {
    for (std::int64_t j = 0; j < m; ++j) one(j);
    return;
  }
  std::int64_t j = 0;
  for (; j + kB <= m; j += kB) block(std::integral_constant<int, NV>{}, j);
  if (j < m) block(std::integral_constant<int, NV>{}, m - kB);
}

// dst = scale * src smoothed down the rows (each of the m columns one line); src != dst.
void smooth_rows(const float* src, float* dst, std::int64_t rows, std::int64_t m, const SmoothCoef& c, float scale) {
  if (c.mode == kSmoothCopy) {
    for (std::int64_t i = 0; i < rows * m; ++i) dst[i] = scale * src[i];
  } else if (c.mode == kSmoothDirect) {
    over_columns<float, 2>(
        m, [&](auto nv, std::int64_t j) { direct_block<decltype(nv)::value>(src + j, dst + j, rows, m, c, scale); },
        [&](std::int64_t j) { smooth_line_direct(src + j, dst + j, rows, m, c, scale); });
  } else {
    auto run = [&](auto r_tag) {
      using R = decltype(r_tag);
      R* work = reinterpret_cast<R*>(scratch_floats(scratch().work, rows * m * static_cast<std::int64_t>(sizeof(R) / 4)));
      over_columns<R, 2>(
          m,
          [&](auto nv, std::int64_t j) {
            recursive_block<R, decltype(nv)::value>(src + j, dst + j, work + j, rows, m, c, scale);
          },
          [&](std::int64_t j) { smooth_line_recursive<R>(src + j, dst + j, work + j, rows, m, c, scale); });
    };
    if (c.mode == kSmoothFloat) run(float{});
    else run(double{});
  }
}

// f (H x W) = scale * the plane held transposed in ft (W x H) smoothed along x (ft's rows),
// then along y. ft is overwritten.
void smooth_transposed(float* ft, float* f, std::int64_t h, std::int64_t w, const SmoothCoef& c, float scale) {
  float* tmp = scratch_floats(scratch().plane, h * w);
  smooth_rows(ft, tmp, w, h, c, 1.0f);
  transpose(tmp, h, w, h, ft, w);
  smooth_rows(ft, f, h, w, c, scale);
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
  for (int field = 0; field < 2; ++field) smooth_transposed(ft + field * hw, f + field * hw, h, w, c, alpha);
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

#if defined(__AVX2__)
// noisy() on 8 RGB uint8 pixels (24 bytes at s, 32 readable) into d: channel c of pixel k
// takes z[c * zstride + k]. `room`: 32 bytes may be stored at d (see store24).
inline void noisy_rgb8(const std::uint8_t* s, std::uint8_t* d, const float* z, std::int64_t zstride, float stddev,
                       bool room) {
  // Pixels 0-3 in the low lane, 4-7 in the high one, each as R | G << 8 | B << 16.
  __m256i v = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 3, 4, 5, 6));
  v = _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1, 0, 1, 2, -1, 3,
                                              4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1));
  const __m256 sd = _mm256_set1_ps(stddev);
  const __m256i byte = _mm256_set1_epi32(0xff);
  __m256i packed = _mm256_setzero_si256();
  for (int c = 0; c < 3; ++c) {
    const __m256 x = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 8 * c), byte));
    const __m256 y = _mm256_fmadd_ps(_mm256_loadu_ps(z + c * zstride), sd, x);
    packed = _mm256_or_si256(packed, _mm256_slli_epi32(store_bytes8(y), 8 * c));
  }
  store_rgb8(d, packed, room);
}
#endif

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
        std::int64_t k = 0;
#if defined(__AVX2__)
        if constexpr (std::is_same_v<T, std::uint8_t>) {
          // 8 pixels at a time while 32 bytes can be read (and, out of place, written).
          for (; k + 8 <= m && p0 + k + 11 <= hw; k += 8)
            noisy_rgb8(sp + k * 3, dp + k * 3, zc + k, kChunk, stddev, src != dst);
        }
#endif
        for (; k < m; ++k)
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
    transpose(xs + p * h * w, w, h, w, ft, h);
    smooth_transposed(ft, os + p * h * w, h, w, coef, 1.0f);
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
