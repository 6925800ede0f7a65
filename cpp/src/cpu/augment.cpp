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
#include "philox_lanes.hpp"

namespace seisoku::cpu {
namespace {

// Thread-local scratch: two images and the float work space of the elastic fields.
struct Scratch {
  std::vector<unsigned char> image[2];
  std::vector<float> field, field_t, rows, plane;
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

// drow[x] = srow[tx - x] for x in [xa, xb), pixels of Q values (Q = 0: q).
template <int Q, class T>
inline void reverse_pixels(T* __restrict drow, const T* __restrict srow, std::int64_t tx, std::int64_t xa,
                           std::int64_t xb, std::int64_t q) {
  const std::int64_t n = Q > 0 ? Q : q;
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
template <int K, int Q, class T>
inline void gather_interior(const T* src, T* dst, const ImageShape& in, const ImageShape& out, std::int64_t y,
                            std::int64_t x, std::int64_t k0x, const float* wx, std::int64_t k0y, const float* wy) {
  const std::int64_t q = Q > 0 ? Q : in.q;
  const std::int64_t row_stride = in.w * q;
  T* d = dst + (y * out.w + x) * q;
  for (std::int64_t p = 0; p < in.p; ++p) {
    const T* base = src + p * in.plane() + k0y * row_stride + k0x * q;
    T* dp = d + p * out.plane();
    for (std::int64_t c = 0; c < q; ++c) {
      float acc = 0.0f;
      for (int j = 0; j < K; ++j) {
        const T* r = base + j * row_stride + c;
        float row = 0.0f;
        for (int i = 0; i < K; ++i) row = row + wx[i] * static_cast<float>(r[i * q]);
        acc = acc + wy[j] * row;
      }
      dp[c] = store_value<T>(acc);
    }
  }
}

// Output pixel (y, x) read at (sx, sy): the interior path when every tap is inside.
template <int K, int Q, class T>
inline void sample_at(const T* src, T* dst, const ImageShape& in, const ImageShape& out, std::int64_t y,
                      std::int64_t x, float sx, float sy, Border border, float fill) {
  float wx[K], wy[K];
  const std::int64_t k0x = axis_weights<K>(sx, wx), k0y = axis_weights<K>(sy, wy);
  if (k0x >= 0 && k0x + K <= in.w && k0y >= 0 && k0y + K <= in.h)
    gather_interior<K, Q>(src, dst, in, out, y, x, k0x, wx, k0y, wy);
  else
    resample_pixel<K>(src, dst, in, out, y, x, sx, sy, border, fill);
}

template <int K, int Q, class T>
void geometric_affine_q(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  for (std::int64_t y = 0; y < st.out.h; ++y) {
    for (std::int64_t x = 0; x < st.out.w; ++x) {
      float sx, sy;
      affine_source(ss.m, x, y, &sx, &sy);
      sample_at<K, Q>(src, dst, st.in, st.out, y, x, sx, sy, st.border, st.fill);
    }
  }
}

template <int K, class T>
void geometric_affine(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  if (st.in.q == 1) geometric_affine_q<K, 1>(src, dst, st, ss);
  else if (st.in.q == 3) geometric_affine_q<K, 3>(src, dst, st, ss);
  else geometric_affine_q<K, 0>(src, dst, st, ss);
}

template <class T>
void geometric(const T* src, T* dst, const StagePlan& st, const SampleStage& ss) {
  switch (ss.mode) {
    case kGeoCopy: std::memcpy(dst, src, static_cast<std::size_t>(st.out.size()) * sizeof(T)); return;
    case kGeoRows: geometric_rows(src, dst, st, ss); return;
    case kGeoNearest: geometric_affine<1>(src, dst, st, ss); return;
    default:
      if (st.interp == Interp::nearest) geometric_affine<1>(src, dst, st, ss);
      else if (st.interp == Interp::bilinear) geometric_affine<2>(src, dst, st, ss);
      else geometric_affine<4>(src, dst, st, ss);
  }
}

template <int K, int Q, class T>
void displace_kq(const T* src, T* dst, const float* dx, const float* dy, const ImageShape& img, Border border,
                 float fill) {
  for (std::int64_t y = 0; y < img.h; ++y) {
    for (std::int64_t x = 0; x < img.w; ++x) {
      const std::int64_t i = y * img.w + x;
      const float sx = static_cast<float>(x) + dx[i], sy = static_cast<float>(y) + dy[i];
      sample_at<K, Q>(src, dst, img, img, y, x, sx, sy, border, fill);
    }
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
    for (std::int64_t c = 0; c < s.p * s.q; ++c)
      for (std::int64_t y = rc[1]; y < rc[3]; ++y)
        for (std::int64_t x = rc[0]; x < rc[2]; ++x) {
          T v = fill;
          if (st.random_fill) {
            const std::int64_t e = (c * s.h + y) * s.w + x;
            const philox::Block b =
                philox::draw(seed, offset, step_block(st.step, kPixelBlock0 + static_cast<std::uint64_t>(e / 4)));
            if constexpr (std::is_same_v<T, float>) {
              float z[4];
              block_normals(b, z);
              v = z[e % 4];
            } else {
              v = static_cast<T>(b.v[e % 4] >> 24);
            }
          }
          img[s.offset(c, y, x)] = v;
        }
  }
}

// The normals of kLanes Philox blocks (block_normals on each), written branch-free over
// arrays so that the compiler vectorizes them: the same operations as philox::box_muller
// (log_positive, sqrt, sincos_2pi), value by value.
void lane_normals(const std::uint32_t* __restrict words, float* __restrict z) {
  constexpr int kPairs = 2 * kLanes;
  float u1[kPairs], u2[kPairs], rad[kPairs], sn[kPairs], cs[kPairs];
  for (int k = 0; k < kPairs; ++k) {
    u1[k] = philox::to_open_unit_float(words[2 * k]);
    u2[k] = philox::to_unit_float(words[2 * k + 1]);
  }
  for (int k = 0; k < kPairs; ++k) {
    // log_positive(u1): u1 = m 2^e with m in [sqrt(1/2), sqrt(2)).
    const std::uint32_t b = float_bits(u1[k]);
    int e = static_cast<int>(b >> 23) - 127;
    float m = bits_float((b & 0x7fffffu) | 0x3f800000u);
    const bool big = m > 1.41421356f;
    m = big ? m * 0.5f : m;
    e = big ? e + 1 : e;
    const float f = m - 1.0f;
    const float sv = f / (2.0f + f);
    const float zz = sv * sv;
    float p = float(2.0 / 21);
    p = philox::fma_(p, zz, float(2.0 / 19));
    p = philox::fma_(p, zz, float(2.0 / 17));
    p = philox::fma_(p, zz, float(2.0 / 15));
    p = philox::fma_(p, zz, float(2.0 / 13));
    p = philox::fma_(p, zz, float(2.0 / 11));
    p = philox::fma_(p, zz, float(2.0 / 9));
    p = philox::fma_(p, zz, float(2.0 / 7));
    p = philox::fma_(p, zz, float(2.0 / 5));
    p = philox::fma_(p, zz, float(2.0 / 3));
    const float logm = philox::fma_(sv * zz, p, 2.0f * sv);
    const float ef = static_cast<float>(e);
    const float lg = philox::fma_(ef, float(0.693145751953125), philox::fma_(ef, float(1.4286068203094172321e-06), logm));
    rad[k] = std::sqrt(-2.0f * lg);
  }
  for (int k = 0; k < kPairs; ++k) {
    // sincos_2pi(u2).
    const float t4 = u2[k] * 4.0f;
    const int q = static_cast<int>(t4);
    float r = t4 - static_cast<float>(q);
    const bool upper = r > 0.5f;
    r = upper ? 1.0f - r : r;
    const float a = r * float(1.5707963267948966);
    const float z2 = a * a;
    float ps = float(-1.0 / 1307674368000.0);
    ps = philox::fma_(ps, z2, float(1.0 / 6227020800.0));
    ps = philox::fma_(ps, z2, float(-1.0 / 39916800.0));
    ps = philox::fma_(ps, z2, float(1.0 / 362880.0));
    ps = philox::fma_(ps, z2, float(-1.0 / 5040.0));
    ps = philox::fma_(ps, z2, float(1.0 / 120.0));
    ps = philox::fma_(ps, z2, float(-1.0 / 6.0));
    const float sa0 = philox::fma_(a * z2, ps, a);
    float pc = float(1.0 / 20922789888000.0);
    pc = philox::fma_(pc, z2, float(-1.0 / 87178291200.0));
    pc = philox::fma_(pc, z2, float(1.0 / 479001600.0));
    pc = philox::fma_(pc, z2, float(-1.0 / 3628800.0));
    pc = philox::fma_(pc, z2, float(1.0 / 40320.0));
    pc = philox::fma_(pc, z2, float(-1.0 / 720.0));
    pc = philox::fma_(pc, z2, float(1.0 / 24.0));
    pc = philox::fma_(pc, z2, -0.5f);
    const float ca0 = philox::fma_(z2, pc, 1.0f);
    const float sa = upper ? ca0 : sa0, ca = upper ? sa0 : ca0;
    const float s0 = (q & 1) ? ca : sa, c0 = (q & 1) ? sa : ca;
    sn[k] = (q & 2) ? -s0 : s0;
    cs[k] = ((q + 1) & 2) ? -c0 : c0;
  }
  for (int k = 0; k < kPairs; ++k) {
    z[2 * k] = rad[k] * cs[k];
    z[2 * k + 1] = rad[k] * sn[k];
  }
}

template <class T>
void add_noise(const T* src, T* dst, const ImageShape& s, float stddev, std::int64_t step, std::uint64_t seed,
               std::uint64_t offset) {
  const std::int64_t n = s.size(), hw = s.h * s.w;
  const std::uint64_t first = step_block(step, kPixelBlock0);
  alignas(32) std::uint32_t words[4 * kLanes];
  alignas(32) float z[4 * kLanes];
  for (std::int64_t base = 0; base < n; base += 4 * kLanes) {
    philox_lanes(seed, offset, first + static_cast<std::uint64_t>(base / 4), words);
    lane_normals(words, z);
    const std::int64_t m = std::min<std::int64_t>(4 * kLanes, n - base);
    if (s.q == 1) {  // logical order is memory order
      for (std::int64_t k = 0; k < m; ++k) dst[base + k] = noisy(src[base + k], z[k], stddev);
    } else {  // logical element base + k is channel c at pixel yx
      std::int64_t c = base / hw, yx = base % hw;
      for (std::int64_t k = 0; k < m; ++k) {
        const std::int64_t o = yx * s.q + c;
        dst[o] = noisy(src[o], z[k], stddev);
        if (++yx == hw) yx = 0, ++c;
      }
    }
  }
}

template <class T>
void run_sample(const T* x, T* out, const AugmentPlan& plan, std::int64_t n) {
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
      parallel_tasks(plan.n, cost, [&](std::int64_t n) { run_sample(xs + n * in_size, os + n * out_size, plan, n); });
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
