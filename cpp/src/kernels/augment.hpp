#pragma once
// The augmentation family shared by cpp/src/ops/augment.cpp and augment_plan.cpp (which
// validate and plan), cpp/src/cpu/augment*.cpp and cuda/augment.cu (which execute): the plan
// of one call, the Gaussian smoothing of a line, and the
// per-pixel arithmetic both devices run with the same operations in the same order (the
// kernel files are built without fp contraction), so that a result is the same bits on CPU
// and GPU.
//
// A call is planned on the host: the steps are grouped into stages (one resampling per group
// of geometric steps, one per elastic step, one in-place pass per cutout / erasing / noise
// step) and every sample's random parameters are drawn there, from Philox keyed by (seed,
// sample index + sample_offset) at blocks step << 48 + j (j < kPixelBlock0). Per-pixel draws
// (noise, random fill, elastic fields) use blocks step << 48 + kPixelBlock0 + j.
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/core.hpp"
#include "seisoku/augment.hpp"
#include "seisoku/philox.hpp"

namespace seisoku {

constexpr std::uint64_t kPixelBlock0 = 16;

SEISOKU_HD std::uint64_t step_block(std::int64_t step, std::uint64_t j) {
  return (static_cast<std::uint64_t>(step) << 48) + j;
}

// One image as P planes of H x W pixels of Q values: NCHW is (P, Q) = (C, 1), NHWC (1, C).
struct ImageShape {
  std::int64_t h, w, p, q;
  SEISOKU_HD std::int64_t plane() const { return h * w * q; }
  SEISOKU_HD std::int64_t size() const { return h * w * p * q; }
  // Memory offset of logical element (channel c, row y, column x).
  SEISOKU_HD std::int64_t offset(std::int64_t c, std::int64_t y, std::int64_t x) const {
    return q == 1 ? (c * h + y) * w + x : (y * w + x) * q + c;
  }
};

inline ImageShape image_shape(std::int64_t h, std::int64_t w, std::int64_t c, ImageLayout layout) {
  return layout == ImageLayout::nchw ? ImageShape{h, w, c, 1} : ImageShape{h, w, 1, c};
}

// Gaussian smoothing of a line of values, the values past each end taken equal to the end
// value (scipy.ndimage's mode "nearest"): out = scale * (the line convolved with the sampled
// Gaussian exp(-k^2 / (2 sigma^2)) / Z). smooth_coef(sigma) picks one of:
//   kSmoothCopy    sigma 0;
//   kSmoothDirect  sigma <= kDirectMaxSigma: the sampled Gaussian g[0..radius], radius
//                  ceil(4.5 sigma), sum 1, in float: acc = g0 x[i], then for k = 1..radius
//                  acc = acc + g[k] (x[i-k] + x[i+k]) with clamped indices;
//   kSmoothFloat / kSmoothDouble: the recursive filter of smooth_line_recursive in float
//                  (sigma < kDoubleMinSigma) or double (beyond, where float coefficients would
//                  misplace poles this close to 1).
enum SmoothMode : std::int32_t { kSmoothCopy = 0, kSmoothDirect = 1, kSmoothFloat = 2, kSmoothDouble = 3 };
constexpr double kDirectMaxSigma = 4.0 / 3.0;
constexpr double kDoubleMinSigma = 64.0;
constexpr double kMaxSigma = 1e6;
constexpr int kMaxRadius = 6;  // ceil(4.5 kDirectMaxSigma)
constexpr int kSmoothSections = 3;

// One second-order section of the recursive filter, in both directions:
//   causal      u[i] = ((c0 x[i] + c1 x[i-1]) + d1 u[i-1]) + d2 u[i-2]
//   anticausal  v[i] = ((e0 x[i+1] + e1 x[i+2]) + d1 v[i+1]) + d2 v[i+2]
// started from the steady state of the extended end value: x[-1] = x[0], u[-1] = u[-2] =
// gc x[0]; x[L] = x[L+1] = x[L-1], v[L] = v[L+1] = ga x[L-1] (gc, ga: the DC gains).
struct SmoothSection {
  double c0, c1, e0, e1, d1, d2, gc, ga;  // float mode: each already a float value
};

struct SmoothCoef {
  std::int32_t mode;
  std::int32_t radius;
  float g[kMaxRadius + 1];
  SmoothSection s[kSmoothSections];
};

// The recursive filter on one line of len values `stride` apart, in R (float or double): the
// causal sums C[i] = (u0 + u1) + u2 of the three sections go to work (R, same indexing),
// then with A[i] = (v0 + v1) + v2, out[i] = scale * float(C[i] + A[i]). The CPU runs the
// same operations on many lines at once.
template <class R>
SEISOKU_HD void smooth_line_recursive(const float* x, float* out, R* work, std::int64_t len, std::int64_t stride,
                                      const SmoothCoef& c, float scale) {
  R u1[kSmoothSections], u2[kSmoothSections];
  R xp = static_cast<R>(x[0]);
  for (int k = 0; k < kSmoothSections; ++k) u1[k] = u2[k] = static_cast<R>(c.s[k].gc) * xp;
  for (std::int64_t i = 0; i < len; ++i) {
    const R xi = static_cast<R>(x[i * stride]);
    R u[kSmoothSections];
    for (int k = 0; k < kSmoothSections; ++k) {
      const SmoothSection& s = c.s[k];
      u[k] = ((static_cast<R>(s.c0) * xi + static_cast<R>(s.c1) * xp) + static_cast<R>(s.d1) * u1[k]) +
             static_cast<R>(s.d2) * u2[k];
      u2[k] = u1[k], u1[k] = u[k];
    }
    work[i * stride] = (u[0] + u[1]) + u[2];
    xp = xi;
  }
  R x1 = static_cast<R>(x[(len - 1) * stride]), x2 = x1;
  for (int k = 0; k < kSmoothSections; ++k) u1[k] = u2[k] = static_cast<R>(c.s[k].ga) * x1;
  for (std::int64_t i = len - 1; i >= 0; --i) {
    R v[kSmoothSections];
    for (int k = 0; k < kSmoothSections; ++k) {
      const SmoothSection& s = c.s[k];
      v[k] = ((static_cast<R>(s.e0) * x1 + static_cast<R>(s.e1) * x2) + static_cast<R>(s.d1) * u1[k]) +
             static_cast<R>(s.d2) * u2[k];
      u2[k] = u1[k], u1[k] = v[k];
    }
    out[i * stride] = scale * static_cast<float>(work[i * stride] + ((v[0] + v[1]) + v[2]));
    x2 = x1, x1 = static_cast<R>(x[i * stride]);
  }
}

// The sampled kernel (kSmoothDirect) on one line.
SEISOKU_HD void smooth_line_direct(const float* x, float* out, std::int64_t len, std::int64_t stride,
                                   const SmoothCoef& c, float scale) {
  for (std::int64_t i = 0; i < len; ++i) {
    float acc = c.g[0] * x[i * stride];
    for (int k = 1; k <= c.radius; ++k) {
      const std::int64_t lo = i - k < 0 ? 0 : i - k, hi = i + k < len ? i + k : len - 1;
      acc = acc + c.g[k] * (x[lo * stride] + x[hi * stride]);
    }
    out[i * stride] = scale * acc;
  }
}

// One line by any mode; work: len values of double (used as R by the recursive modes).
SEISOKU_HD void smooth_line(const float* x, float* out, double* work, std::int64_t len, std::int64_t stride,
                            const SmoothCoef& c, float scale) {
  if (c.mode == kSmoothDirect) {
    smooth_line_direct(x, out, len, stride, c, scale);
  } else if (c.mode == kSmoothFloat) {
    smooth_line_recursive<float>(x, out, reinterpret_cast<float*>(work), len, stride, c, scale);
  } else if (c.mode == kSmoothDouble) {
    smooth_line_recursive<double>(x, out, work, len, stride, c, scale);
  } else {
    for (std::int64_t i = 0; i < len; ++i) out[i * stride] = scale * x[i * stride];
  }
}

enum class StageKind : std::int32_t { geometric, elastic, fill, noise };
// Where a stage reads and writes: the input, the output, or one of two scratch images.
enum Buffer : std::int32_t { kBufX = 0, kBufOut = 1, kBufScratch0 = 2, kBufScratch1 = 3 };

struct StagePlan {
  StageKind kind;
  ::std::int32_t step;              // pipeline index (key of the per-pixel draws)
  ::std::int32_t src, dst;          // Buffer codes; a fill / noise stage copies src to dst first
  ImageShape in, out;               // image sizes before and after the stage
  Interpolation interpolation;
  Border border;
  float fill;                       // already rounded and saturated for uint8
  float alpha;                      // elastic
  SmoothCoef smooth;                // elastic
  float std;                        // noise (so the struct spells the namespace ::std)
  bool random_fill;                 // fill
};

// Per-sample mode of a geometric stage.
enum GeoMode : std::int32_t { kGeoCopy = 0, kGeoRows = 1, kGeoNearest = 2, kGeoInterp = 3 };

// One sample's parameters for one stage. Geometric: the map from output (x, y) to source
// (m0 x + m1 y + m2, m3 x + m4 y + m5) and a GeoMode. Others: mode 1 applies, 0 skips; fill
// stages list rectangles [x0, x1) x [y0, y1) in rects[rect_begin .. + rect_count).
struct SampleStage {
  float m[6];
  std::int32_t mode;
  std::int32_t rect_begin, rect_count;
};

struct AugmentPlan {
  std::int64_t n = 0;
  std::uint64_t seed = 0, sample_offset = 0;
  std::vector<StagePlan> stages;
  std::vector<SampleStage> samples;  // n * stages.size(), sample-major
  std::vector<std::int32_t> rects;   // x0, y0, x1, y1 each
  std::int64_t scratch = 0;          // values per sample in each scratch image
};

SEISOKU_HD float clamp_coord(float s) {
  // NaN and huge coordinates land far outside the image (never an overflowing cast).
  s = s > -1.0e9f ? s : -1.0e9f;
  return s < 1.0e9f ? s : 1.0e9f;
}

// Index read for tap k of an axis of n pixels: -1 stands for the constant fill.
SEISOKU_HD std::int64_t border_index(std::int64_t k, std::int64_t n, Border border) {
  if (k >= 0 && k < n) return k;
  if (border == Border::constant) return -1;
  if (border == Border::edge || n == 1) return k < 0 ? 0 : n - 1;
  const std::int64_t period = 2 * (n - 1);
  std::int64_t m = k % period;
  if (m < 0) m += period;
  return m < n ? m : period - m;
}

// The first tap k0 and the K weights of one axis at coordinate s: K = 1 nearest, 2 linear,
// 4 Keys cubic (a = -0.5); the taps are k0 .. k0 + K - 1 (|k0| <= 1e9 + 2, so any integer
// type of 32 bits or more holds it).
template <int K, class I = std::int64_t>
SEISOKU_HD I axis_weights(float s, float* wt) {
  s = clamp_coord(s);
  if constexpr (K == 1) {
    wt[0] = 1.0f;
    return static_cast<I>(std::floor(s + 0.5f));
  } else if constexpr (K == 2) {
    const float f = std::floor(s);
    const float t = s - f;
    wt[0] = 1.0f - t;
    wt[1] = t;
    return static_cast<I>(f);
  } else {
    const float f = std::floor(s);
    const float t = s - f;
    const float t2 = t * t, t3 = t2 * t;
    wt[0] = 0.5f * ((2.0f * t2 - t3) - t);
    wt[1] = 0.5f * ((3.0f * t3 - 5.0f * t2) + 2.0f);
    wt[2] = 0.5f * ((4.0f * t2 - 3.0f * t3) + t);
    wt[3] = 0.5f * (t3 - t2);
    return static_cast<I>(f) - 1;
  }
}

// The K taps of one axis of n pixels at coordinate s, through the border.
template <int K>
SEISOKU_HD void axis_taps(float s, std::int64_t n, Border border, std::int64_t* idx, float* wt) {
  const std::int64_t k0 = axis_weights<K>(s, wt);
  for (int i = 0; i < K; ++i) idx[i] = border_index(k0 + i, n, border);
}

template <class T>
SEISOKU_HD T store_value(float v) {
  if constexpr (std::is_same_v<T, std::uint8_t>) {
    v = v > 0.0f ? v : 0.0f;  // NaN -> 0
    v = v < 255.0f ? v : 255.0f;
    return static_cast<std::uint8_t>(static_cast<std::int32_t>(v + 0.5f));
  } else {
    return v;
  }
}

// Writes output pixel (y, x) of dst (all channels) = src sampled at (sx, sy): for every value,
// the sum over tap rows j of wy[j] * (sum over tap columns i of wx[i] * v), in tap order.
template <int K, class T>
SEISOKU_HD void resample_pixel(const T* src, T* dst, const ImageShape& in, const ImageShape& out, std::int64_t y,
                               std::int64_t x, float sx, float sy, Border border, float fill) {
  std::int64_t ix[K], iy[K];
  float wx[K], wy[K];
  axis_taps<K>(sx, in.w, border, ix, wx);
  axis_taps<K>(sy, in.h, border, iy, wy);
  const std::int64_t in_row = in.w * in.q;
  T* d = dst + (y * out.w + x) * out.q;
  for (std::int64_t p = 0; p < in.p; ++p) {
    const T* plane = src + p * in.plane();
    T* dp = d + p * out.plane();
    for (std::int64_t q = 0; q < in.q; ++q) {
      float acc = 0.0f;
      for (int j = 0; j < K; ++j) {
        float row = 0.0f;
        for (int i = 0; i < K; ++i) {
          const float v = (iy[j] < 0 || ix[i] < 0) ? fill : static_cast<float>(plane[iy[j] * in_row + ix[i] * in.q + q]);
          row = row + wx[i] * v;
        }
        acc = acc + wy[j] * row;
      }
      dp[q] = store_value<T>(acc);
    }
  }
}

// Source coordinates of output pixel (x, y) under an affine map.
SEISOKU_HD void affine_source(const float* m, std::int64_t x, std::int64_t y, float* sx, float* sy) {
  const float xf = static_cast<float>(x), yf = static_cast<float>(y);
  *sx = (m[0] * xf + m[1] * yf) + m[2];
  *sy = (m[3] * xf + m[4] * yf) + m[5];
}

// One geometric stage for output pixel (y, x) of one sample; kGeoRows and kGeoCopy are
// nearest sampling too (the CPU runs them as row copies, with the same result).
template <class T>
SEISOKU_HD void geometric_pixel(const T* src, T* dst, const StagePlan& st, const SampleStage& ss, std::int64_t y,
                                std::int64_t x) {
  float sx, sy;
  affine_source(ss.m, x, y, &sx, &sy);
  if (ss.mode != kGeoInterp || st.interpolation == Interpolation::nearest)
    resample_pixel<1>(src, dst, st.in, st.out, y, x, sx, sy, st.border, st.fill);
  else if (st.interpolation == Interpolation::bilinear)
    resample_pixel<2>(src, dst, st.in, st.out, y, x, sx, sy, st.border, st.fill);
  else
    resample_pixel<4>(src, dst, st.in, st.out, y, x, sx, sy, st.border, st.fill);
}

// Output pixel (y, x) of a displacement resampling: source (x + dx, y + dy).
template <class T>
SEISOKU_HD void displace_pixel(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img,
                               Interpolation interpolation, Border border, float fill, std::int64_t y, std::int64_t x) {
  const std::int64_t i = y * img.w + x;
  const float sx = static_cast<float>(x) + dx[i], sy = static_cast<float>(y) + dy[i];
  if (interpolation == Interpolation::nearest) resample_pixel<1>(src, dst, img, img, y, x, sx, sy, border, fill);
  else if (interpolation == Interpolation::bilinear) resample_pixel<2>(src, dst, img, img, y, x, sx, sy, border, fill);
  else resample_pixel<4>(src, dst, img, img, y, x, sx, sy, border, fill);
}

// Uniform [-1, 1) from one Philox word (exact: a multiple of 2^-23).
SEISOKU_HD float signed_unit(std::uint32_t u) { return philox::to_unit_float(u) * 2.0f - 1.0f; }

// The four N(0, 1) values of one Philox block, in lane order (as seisoku::normal).
SEISOKU_HD void block_normals(const philox::Block& r, float* v) {
  philox::box_muller(philox::to_open_unit_float(r.v[0]), philox::to_unit_float(r.v[1]), &v[0], &v[1]);
  philox::box_muller(philox::to_open_unit_float(r.v[2]), philox::to_unit_float(r.v[3]), &v[2], &v[3]);
}

// The random-erasing value of logical element e (channel-major index (c * H + y) * W + x) of
// a sample: N(0, 1) for float32, a uniform byte for uint8, from Philox block e / 4 of `step`.
template <class T>
SEISOKU_HD T random_fill_value(std::uint64_t seed, std::uint64_t offset, std::int64_t step, std::int64_t e) {
  const philox::Block b =
      philox::draw(seed, offset, step_block(step, kPixelBlock0 + static_cast<std::uint64_t>(e / 4)));
  if constexpr (std::is_same_v<T, float>) {
    float z[4];
    block_normals(b, z);
    return z[e % 4];
  } else {
    return static_cast<T>(b.v[e % 4] >> 24);
  }
}

// x + noise_std * z for one value (uint8: rounded and saturated).
template <class T>
SEISOKU_HD T noisy(T x, float z, float noise_std) {
  return store_value<T>(philox::fma_(z, noise_std, static_cast<float>(x)));
}

SmoothCoef smooth_coef(double sigma);  // cpp/src/ops/augment.cpp; sigma in [0, kMaxSigma]

#define SEISOKU_AUGMENT_KERNEL_DECLS                                                                 \
  void augment(const Tensor& x, const Tensor& out, const AugmentPlan& plan);                         \
  void gaussian_smooth(const Tensor& x, const Tensor& out, const SmoothCoef& coef);                  \
  void elastic_displacement(const Tensor& out, float alpha, const SmoothCoef& coef, std::uint64_t seed, \
                            std::uint64_t sample_offset, std::int64_t step_index);                   \
  void displace(const Tensor& x, const Tensor& disp, const Tensor& out, const ImageShape& img, Interpolation interpolation, \
                Border border, float fill);

namespace cpu {
SEISOKU_AUGMENT_KERNEL_DECLS
}  // namespace cpu

namespace gpu {
SEISOKU_AUGMENT_KERNEL_DECLS
}  // namespace gpu

#undef SEISOKU_AUGMENT_KERNEL_DECLS

}  // namespace seisoku
