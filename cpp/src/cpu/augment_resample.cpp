// CPU resampling through a padded source (augmentation family): rotations and other general
// affine maps, and the displacements of elastic distortion. Each source image is copied once
// with K pixels of border on every side, so that every output pixel reads its K x K taps
// without a branch; rows of weights are computed in vectorized loops, then 8 pixels at a time
// go through AVX2 gathers (NHWC RGB uint8 keeps its bytes and loads pairs of taps). Per value
// the arithmetic is resample_pixel's (kernels/augment.hpp), so the CUDA twin gives the same
// bits.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "augment_cpu.hpp"
#include "core/dispatch.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {
namespace augment_impl {
namespace {

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

}  // namespace

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
void displace_image(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img, Interpolation interpolation,
                    Border border, float fill) {
  if (interpolation == Interpolation::nearest) displace_k<1>(src, dst, dx, dy, img, border, fill);
  else if (interpolation == Interpolation::bilinear) displace_k<2>(src, dst, dx, dy, img, border, fill);
  else displace_k<4>(src, dst, dx, dy, img, border, fill);
}

template void geometric_affine<1, float>(const float*, float*, const StagePlan&, const SampleStage&);
template void geometric_affine<2, float>(const float*, float*, const StagePlan&, const SampleStage&);
template void geometric_affine<4, float>(const float*, float*, const StagePlan&, const SampleStage&);
template void geometric_affine<1, std::uint8_t>(const std::uint8_t*, std::uint8_t*, const StagePlan&, const SampleStage&);
template void geometric_affine<2, std::uint8_t>(const std::uint8_t*, std::uint8_t*, const StagePlan&, const SampleStage&);
template void geometric_affine<4, std::uint8_t>(const std::uint8_t*, std::uint8_t*, const StagePlan&, const SampleStage&);
template void displace_image<float>(const float*, float*, const float*, const float*, const ImageShape&, Interpolation, Border,
                                    float);
template void displace_image<std::uint8_t>(const std::uint8_t*, std::uint8_t*, const float*, const float*,
                                           const ImageShape&, Interpolation, Border, float);

}  // namespace augment_impl

using augment_impl::displace_image;

void displace(const Tensor& x, const Tensor& disp, const Tensor& out, const ImageShape& img, Interpolation interpolation,
              Border border, float fill) {
  const std::int64_t n = x.size(0), size = img.size(), hw = img.h * img.w;
  const float* ds = disp.data_as<float>();
  detail::dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, std::uint8_t>) {
      const T* xs = x.data_as<T>();
      T* os = out.data_as<T>();
      parallel_tasks(n, size * 8, [&](std::int64_t i) {
        displace_image(xs + i * size, os + i * size, ds + i * 2 * hw, ds + i * 2 * hw + hw, img, interpolation, border,
                       fill);
      });
    }
  });
}

}  // namespace seisoku::cpu

