// CPU Gaussian smoothing and elastic fields (augmentation family). smooth_line's arithmetic
// (kernels/augment.hpp) on every column of a plane at once: the recursion runs down the rows
// and the columns are independent lines, taken a block of SIMD vectors at a time with the
// filter state in registers. A plane whose width is not a multiple of the block ends with a
// block that overlaps the one before (those columns are computed twice, to the same values).
//
// A plane is smoothed along x, then along y: held transposed (W x H), its rows are smoothed,
// it is transposed back and its rows smoothed again. Elastic fields: the 2 H W uniform words
// are drawn in the order of the transposed fields (dx then dy, each W x H), so they start
// in that layout; the last pass scales by alpha.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "augment_cpu.hpp"
#include "parallel.hpp"
#include "philox_lanes.hpp"
#include "simd.hpp"

namespace seisoku::cpu {
namespace augment_impl {
namespace {

// Thread-local work space: the transposed fields, one plane, the recursive filter's sums.
struct SmoothScratch {
  std::vector<float> field_t, plane, work;
};

SmoothScratch& scratch() {
  thread_local SmoothScratch s;
  return s;
}

float* scratch_floats(std::vector<float>& v, std::int64_t n) {
  if (v.size() < static_cast<std::size_t>(n)) v.resize(static_cast<std::size_t>(n));
  return v.data();
}

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

}  // namespace

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

}  // namespace augment_impl

using augment_impl::elastic_field;
using augment_impl::smooth_transposed;
using augment_impl::scratch;
using augment_impl::scratch_floats;

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

}  // namespace seisoku::cpu
