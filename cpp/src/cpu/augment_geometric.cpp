// CPU geometric stages of the augmentation family: the plan's per-sample mode picks a copy,
// row copies for integer axis-aligned maps (flips, crops: forward with memcpy, mirrored with
// byte shuffles), two separable passes for other axis-aligned maps (resized crops; a byte-
// shuffle path for NHWC RGB uint8) or the padded-source resampling of augment_resample.cpp
// (rotations). Every path computes resample_pixel's arithmetic (kernels/augment.hpp), value
// for value, so the CUDA twin's one-thread-per-pixel code gives the same bits.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "augment_cpu.hpp"

#if defined(__SSE__)
#include <immintrin.h>
#endif

namespace seisoku::cpu::augment_impl {
namespace {

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
  if constexpr (Q == 1 && sizeof(T) == 1) {
    // 16 bytes reversed by one shuffle; a last, overlapping vector ends the row (rows of 16 or
    // more pixels: a 28-pixel row is two shuffles instead of 28 byte moves).
    if (xb - xa >= 16) {
      const __m128i rev = _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
      auto reverse16 = [&](std::int64_t x) {  // drow[x .. x + 15] = srow[tx - x .. tx - x - 15]
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(srow + (tx - x - 15)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(drow + x), _mm_shuffle_epi8(v, rev));
      };
      for (; xa + 16 <= xb; xa += 16) reverse16(xa);
      if (xa < xb) reverse16(xb - 16);
      return;
    }
  }
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

}  // namespace

template <class T>
void geometric(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  switch (ss.mode) {
    case kGeoCopy: std::memcpy(dst, src, static_cast<std::size_t>(st.out.size()) * sizeof(T)); return;
    case kGeoRows: geometric_rows(src, dst, st, ss); return;
    case kGeoNearest: geometric_affine<1>(src, dst, st, ss); return;
    default: {
      const bool axis = ss.m[1] == 0.0f && ss.m[3] == 0.0f;
      if (st.interpolation == Interpolation::nearest) geometric_affine<1>(src, dst, st, ss);
      else if (st.interpolation == Interpolation::bilinear) {
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

template void geometric<float>(const float*, float*, const StagePlan&, const SampleStage&);
template void geometric<std::uint8_t>(const std::uint8_t*, std::uint8_t*, const StagePlan&, const SampleStage&);

}  // namespace seisoku::cpu::augment_impl
