// CPU kernels of conv2d and conv2d_backward: convolution as small in-cache matrix products
// with register-blocked micro-kernels in OpenMP task loops (no BLAS, no BLAS threads).
//
// Stride 1 (the common case) needs no im2col. Over the padded pixel index m = oh * Wp + ow
// (Wp = W + 2 pw), row k = (c, i, j) of the im2col matrix is the zero-padded input itself
// shifted by off[k] = (c * Hp + i) * Wp + j, so kernels read it in place; the columns
// ow >= Wo are computed and dropped, or meet zeros.
//   forward:  per (sample, block of output rows): out = bias + W @ im2col, by micro_kernel
//             (a kRows x kCols accumulator block over output channels x pixels).
//   grad_x:   per (sample, block of channels): dcol = W^T @ G', G' being grad_out over m
//             with zeros at ow >= Wo; each tap (i, j) then adds its dcol row into the padded
//             grad_x plane shifted by i * Wp + j, taps in row-major order.
//   grad_W:   per fixed group of samples, in batches of samples: grad_W[o][k] = sum over the
//             batch and m of G'[o][m] * x[off[k] + m], by dot_kernel (vector accumulators
//             over m, lanes summed in a fixed tree); group partials summed in group order.
// Other strides (and, for the zero-meets-input paths, non-finite x or W; for grad_x, very
// large samples) use im2col tiles multiplied by the same micro-kernel (tile_gemm) and, for
// grad_x, a gather over each pixel's taps. grad_bias: per (n, o) sums in double, then over
// n in order.
// Tasks, tiles and groups depend on the shapes only and every sum runs in a fixed order, so
// results are bitwise the same for any thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "kernels/conv.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace seisoku::cpu {
namespace {

constexpr int kRows = 6;  // micro_kernel accumulator rows
template <class T>
constexpr int kCols = 2 * kVectorBytes / sizeof(T);            // micro_kernel accumulator columns (2 vectors)
constexpr std::int64_t kDepthBlock = 256;                      // depth slice of one micro_kernel call
constexpr std::int64_t kTileBudget = std::int64_t{1} << 15;    // elements of a tile buffer
constexpr std::int64_t kPartialBudget = std::int64_t{1} << 21;  // elements of all grad_W partials
constexpr std::int64_t kMaxGroups = 16;                        // grad_W sample groups
constexpr std::int64_t kDotChunk = 512;                        // pixels per dot_kernel pass
constexpr std::int64_t kSampleBudget = std::int64_t{1} << 21;  // elements of a whole-sample grad_x task

inline bool finite(float v) { return (v - v) == 0.0f; }
inline bool finite(double v) { return (v - v) == 0.0; }

std::int64_t round_up(std::int64_t v, std::int64_t b) { return (v + b - 1) / b * b; }

// A per-thread scratch buffer (slot 0..4), grown as needed and kept for the next call.
template <class T>
T* scratch(int slot, std::int64_t n) {
  thread_local std::vector<T> buffers[5];
  auto& b = buffers[slot];
  if (static_cast<std::int64_t>(b.size()) < n) b.resize(static_cast<std::size_t>(n));
  return b.data();
}

// c[a * ldc + m] (+)= sum_k ap[k * kRows + a] * brow(k)[m] for a < kRows, m < kCols: the
// accumulators (kRows x 2 vectors) start from zero and, when Load, are added to c at the end
// (c is prefetched meanwhile, so the multiply-adds never wait for it). brow(k) points at
// kCols contiguous elements of row k of B.
template <bool Load, class T, class BRow>
inline void micro_kernel(std::int64_t depth, const T* __restrict ap, BRow&& brow, T* __restrict c,
                         std::int64_t ldc) {
  using V = typename Simd<T>::V;
  constexpr int W = sizeof(V) / sizeof(T);
  V acc[kRows][2];
  for (int a = 0; a < kRows; ++a) {
    acc[a][0] = V{};
    acc[a][1] = V{};
    if (Load) {
      __builtin_prefetch(c + a * ldc);
      __builtin_prefetch(c + a * ldc + 2 * W - 1);
    }
  }
  for (std::int64_t k = 0; k < depth; ++k) {
    const T* b = brow(k);
    const V b0 = vload<V>(b), b1 = vload<V>(b + W);
    const T* av = ap + k * kRows;
    for (int a = 0; a < kRows; ++a) {
      const V s = vsplat<V>(av[a]);
      acc[a][0] = vfma(s, b0, acc[a][0]);
      acc[a][1] = vfma(s, b1, acc[a][1]);
    }
  }
  for (int a = 0; a < kRows; ++a) {
    if (Load) {
      acc[a][0] += vload<V>(c + a * ldc);
      acc[a][1] += vload<V>(c + a * ldc + W);
    }
    vstore(c + a * ldc, acc[a][0]);
    vstore(c + a * ldc + W, acc[a][1]);
  }
}

// c[a * ldc + b] += sum over samples s < count and m < depth of arow(s, a)[m] * brow(s, b)[m]
// for a < na <= DA, b < nb <= DB: dot products of rows with DA x DB vector accumulators,
// each summed over its lanes in a fixed pairwise order at the end. depth is a multiple of
// the vector length; rows a >= na and b >= nb must still be readable (results dropped).
template <class T, int DA, int DB, class ARow, class BRow>
inline void dot_kernel(std::int64_t count, std::int64_t depth, ARow&& arow, BRow&& brow, T* __restrict c,
                       std::int64_t ldc, int na, int nb) {
  using V = typename Simd<T>::V;
  constexpr int W = sizeof(V) / sizeof(T);
  V acc[DA][DB];
  for (int a = 0; a < DA; ++a)
    for (int b = 0; b < DB; ++b) acc[a][b] = V{};
  for (std::int64_t smp = 0; smp < count; ++smp) {
    const T* ar[DA];
    const T* br[DB];
    for (int a = 0; a < DA; ++a) ar[a] = arow(smp, a);
    for (int b = 0; b < DB; ++b) br[b] = brow(smp, b);
    for (std::int64_t m = 0; m < depth; m += W) {
      V av[DA];
      for (int a = 0; a < DA; ++a) av[a] = vload<V>(ar[a] + m);
      for (int b = 0; b < DB; ++b) {
        const V bv = vload<V>(br[b] + m);
        for (int a = 0; a < DA; ++a) acc[a][b] = vfma(av[a], bv, acc[a][b]);
      }
    }
  }
  for (int a = 0; a < na; ++a) {
    for (int b = 0; b < nb; ++b) {
      T lanes[W];
      const V sum = acc[a][b];  // a copy: acc never has its address taken (see vstore)
      std::memcpy(lanes, &sum, sizeof(V));
      for (int width = W / 2; width > 0; width /= 2)
        for (int v = 0; v < width; ++v) lanes[v] += lanes[v + width];
      c[a * ldc + b] += lanes[0];
    }
  }
}

// C (rows_pad x cols_pad, leading dimension ldc) (+)= A @ B from packed operands: A as
// [row block][depth][kRows], B as [col block][depth][kCols]. Load: add to C's contents.
template <bool Load, class T>
void tile_gemm(const T* ap, const T* bp, T* c, std::int64_t ldc, std::int64_t rows_pad, std::int64_t cols_pad,
               std::int64_t depth) {
  constexpr int MB = kCols<T>;
  for (std::int64_t k0 = 0; k0 < depth; k0 += kDepthBlock) {
    const std::int64_t kc = std::min(kDepthBlock, depth - k0);
    for (std::int64_t r = 0; r < rows_pad; r += kRows) {
      for (std::int64_t m = 0; m < cols_pad; m += MB) {
        const T* b = bp + (m * depth + k0 * MB);
        const auto brow = [b](std::int64_t k) { return b + k * MB; };
        if (Load || k0 > 0) micro_kernel<true>(kc, ap + (r * depth + k0 * kRows), brow, c + r * ldc + m, ldc);
        else micro_kernel<false>(kc, ap + (r * depth + k0 * kRows), brow, c + r * ldc + m, ldc);
      }
    }
  }
}

// Packs A (rows x depth), element (r, d) = at(r, d), as [row block][depth][kRows], zero-padded.
template <class T, class At>
void pack_rows(T* dst, std::int64_t rows, std::int64_t depth, At&& at) {
  for (std::int64_t r0 = 0; r0 < rows; r0 += kRows)
    for (std::int64_t d = 0; d < depth; ++d)
      for (std::int64_t a = 0; a < kRows; ++a) *dst++ = r0 + a < rows ? at(r0 + a, d) : T(0);
}

// Packs B (depth x cols, row-major with leading dimension ld) as [col block][depth][kCols].
template <class T>
void pack_cols(T* dst, const T* src, std::int64_t ld, std::int64_t depth, std::int64_t cols) {
  constexpr int MB = kCols<T>;
  for (std::int64_t m0 = 0; m0 < cols; m0 += MB) {
    const std::int64_t width = std::min<std::int64_t>(MB, cols - m0);
    for (std::int64_t d = 0; d < depth; ++d, dst += MB) {
      const T* s = src + d * ld + m0;
      if (width == MB) {
        for (int m = 0; m < MB; ++m) dst[m] = s[m];
      } else {
        for (int m = 0; m < MB; ++m) dst[m] = m < width ? s[m] : T(0);
      }
    }
  }
}

// Packs B = src^T (src is cols x depth, row-major with leading dimension ld) as
// [col block][depth][kCols].
template <class T>
void pack_cols_transposed(T* dst, const T* src, std::int64_t ld, std::int64_t depth, std::int64_t cols) {
  constexpr int MB = kCols<T>;
  for (std::int64_t k0 = 0; k0 < cols; k0 += MB) {
    const std::int64_t width = std::min<std::int64_t>(MB, cols - k0);
    for (std::int64_t d = 0; d < depth; ++d, dst += MB) {
      for (std::int64_t kk = 0; kk < width; ++kk) dst[kk] = src[(k0 + kk) * ld + d];
      for (std::int64_t kk = width; kk < MB; ++kk) dst[kk] = T(0);
    }
  }
}

// Rows per tile: about kTileBudget / per_row rows, balanced over `rows`, at least one.
std::int64_t rows_per_tile(std::int64_t rows, std::int64_t per_row) {
  const std::int64_t tiles = std::max<std::int64_t>(1, (rows * std::max<std::int64_t>(1, per_row) + kTileBudget - 1) /
                                                           kTileBudget);
  const std::int64_t blocks = std::min(rows, tiles);
  return (rows + blocks - 1) / blocks;
}

// Tasks of several kinds gathered for one parallel region (one fork and join per op).
class TaskList {
 public:
  void add(std::int64_t count, std::function<void(std::int64_t)> f) {
    if (count > 0) parts_.push_back({count, std::move(f)});
  }
  void run() {
    std::int64_t total = 0;
    for (const Part& p : parts_) total += p.count;
    parallel_tasks(total, kParallelGrain, [&](std::int64_t t) {
      for (const Part& p : parts_) {
        if (t < p.count) return p.f(t);
        t -= p.count;
      }
    });
  }

 private:
  struct Part {
    std::int64_t count;
    std::function<void(std::int64_t)> f;
  };
  std::vector<Part> parts_;
};

// ---- stride 1 --------------------------------------------------------------------------

// Zero-padded rows [h0, h0 + rows) of the padded coordinates of one sample, all channels:
// dst (C x rows x Wp) then `slack` zeros. Returns whether the copied input is finite.
template <class T>
bool pad_slab(const T* xn, const ConvGeometry& g, std::int64_t h0, std::int64_t rows, T* dst, std::int64_t slack) {
  const std::int64_t wp = g.w + 2 * g.pw;
  bool ok = true;
  for (std::int64_t c = 0; c < g.c; ++c) {
    for (std::int64_t r = 0; r < rows; ++r, dst += wp) {
      const std::int64_t ih = h0 + r - g.ph;
      if (ih < 0 || ih >= g.h) {
        std::fill(dst, dst + wp, T(0));
        continue;
      }
      const T* s = xn + (c * g.h + ih) * g.w;
      std::fill(dst, dst + g.pw, T(0));
      for (std::int64_t w = 0; w < g.w; ++w) {
        dst[g.pw + w] = s[w];
        ok &= finite(s[w]);
      }
      std::fill(dst + g.pw + g.w, dst + wp, T(0));
    }
  }
  std::fill(dst, dst + slack, T(0));
  return ok;
}

// off[k] for a slab of `rows` padded rows per channel.
std::vector<std::int64_t> tap_offsets(const ConvGeometry& g, std::int64_t rows) {
  const std::int64_t wp = g.w + 2 * g.pw;
  std::vector<std::int64_t> off(static_cast<std::size_t>(g.k()));
  for (std::int64_t k = 0; k < g.k(); ++k)
    off[static_cast<std::size_t>(k)] = ((k / (g.kh * g.kw)) * rows + (k / g.kw) % g.kh) * wp + k % g.kw;
  return off;
}

// G' (O x m_pad): grad_out of one sample over m = oh * Wp + ow, zero at ow >= Wo and past Ho rows.
template <class T>
void spread_rows(const T* gon, const ConvGeometry& g, T* dst, std::int64_t m_pad) {
  const std::int64_t wp = g.w + 2 * g.pw, L = g.l();
  for (std::int64_t o = 0; o < g.o; ++o, dst += m_pad) {
    const T* src = gon + o * L;
    for (std::int64_t oh = 0; oh < g.ho; ++oh) {
      std::copy(src + oh * g.wo, src + (oh + 1) * g.wo, dst + oh * wp);
      std::fill(dst + oh * wp + g.wo, dst + (oh + 1) * wp, T(0));
    }
    std::fill(dst + g.ho * wp, dst + m_pad, T(0));
  }
}

template <class T>
void forward_stride1(const T* xs, const T* wp, const T* b, T* os, const ConvGeometry& g) {
  constexpr int MB = kCols<T>;
  const std::int64_t K = g.k(), L = g.l(), o_pad = round_up(g.o, kRows), wpad = g.w + 2 * g.pw;
  const std::int64_t rows = rows_per_tile(g.ho, wpad * (o_pad + g.c));
  const std::int64_t blocks = (g.ho + rows - 1) / rows;
  const std::int64_t slab_rows = rows + g.kh - 1, slack = g.kw + MB;
  const std::vector<std::int64_t> off = tap_offsets(g, slab_rows);
  const std::int64_t* offs = off.data();
  parallel_tasks(g.n * blocks, rows * wpad * K * g.o / 8 + 1, [&](std::int64_t t) {
    const std::int64_t n = t / blocks, oh0 = (t % blocks) * rows, oh1 = std::min(g.ho, oh0 + rows);
    const std::int64_t m_pad = round_up((oh1 - oh0) * wpad, MB);
    T* slab = scratch<T>(0, g.c * slab_rows * wpad + slack);
    T* c = scratch<T>(1, o_pad * m_pad);
    pad_slab(xs + n * g.c * g.h * g.w, g, oh0, slab_rows, slab, slack);
    for (std::int64_t m0 = 0; m0 < m_pad; m0 += MB) {
      const T* bm = slab + m0;
      const auto brow = [bm, offs](std::int64_t k) { return bm + offs[k]; };
      for (std::int64_t r = 0; r < o_pad; r += kRows) micro_kernel<false>(K, wp + r * K, brow, c + r * m_pad + m0, m_pad);
    }
    for (std::int64_t o = 0; o < g.o; ++o) {
      const T bo = b ? b[o] : T(0);
      for (std::int64_t oh = oh0; oh < oh1; ++oh) {
        const T* src = c + o * m_pad + (oh - oh0) * wpad;
        T* dst = os + (n * g.o + o) * L + oh * g.wo;
        for (std::int64_t ow = 0; ow < g.wo; ++ow) dst[ow] = src[ow] + bo;
      }
    }
  });
}

// Adds the stride-1 grad_x tasks to `tasks`; wtp receives W^T packed per channel block and
// must live until the tasks have run.
template <class T>
void backward_input_stride1(const T* go, const T* w, T* gx, const ConvGeometry& g, std::vector<T>& wtp,
                            TaskList& tasks) {
  constexpr int MB = kCols<T>;
  const std::int64_t K = g.k(), L = g.l(), taps = g.kh * g.kw;
  const std::int64_t wpad = g.w + 2 * g.pw, hpad = g.h + 2 * g.ph;
  const std::int64_t m_count = g.ho * wpad, m_pad = round_up(m_count, MB);
  // Channels per task: enough taps to fill the micro-kernel rows.
  const std::int64_t cb = std::min(g.c, std::max<std::int64_t>(1, (256 + taps - 1) / taps));
  const std::int64_t cblocks = (g.c + cb - 1) / cb;
  const std::int64_t kb_pad = round_up(cb * taps, kRows);
  wtp.assign(static_cast<std::size_t>(cblocks * kb_pad * g.o), T(0));  // W^T rows per channel block
  for (std::int64_t blk = 0; blk < cblocks; ++blk) {
    const std::int64_t k0 = blk * cb * taps, rows = std::min(K, k0 + cb * taps) - k0;
    pack_rows(wtp.data() + blk * kb_pad * g.o, rows, g.o, [&](std::int64_t r, std::int64_t d) { return w[d * K + k0 + r]; });
  }
  const T* wts = wtp.data();
  tasks.add(g.n * cblocks, [=, &g](std::int64_t t) {
    const std::int64_t n = t / cblocks, blk = t % cblocks;
    const std::int64_t c0 = blk * cb, c1 = std::min(g.c, c0 + cb), rows_pad = round_up((c1 - c0) * taps, kRows);
    T* gsp = scratch<T>(0, g.o * m_pad);
    T* bp = scratch<T>(1, g.o * m_pad);
    T* dcol = scratch<T>(2, kb_pad * m_pad);
    T* plane = scratch<T>(3, hpad * wpad + g.kw);  // the last tap's gap columns spill past the plane
    spread_rows(go + n * g.o * L, g, gsp, m_pad);
    pack_cols(bp, gsp, m_pad, g.o, m_pad);
    tile_gemm<false>(wts + blk * kb_pad * g.o, bp, dcol, m_pad, rows_pad, m_pad, g.o);
    for (std::int64_t c = c0; c < c1; ++c) {
      std::fill(plane, plane + hpad * wpad + g.kw, T(0));
      for (std::int64_t i = 0; i < g.kh; ++i) {
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const T* __restrict src = dcol + ((c - c0) * taps + i * g.kw + j) * m_pad;
          T* __restrict dst = plane + i * wpad + j;
          for (std::int64_t m = 0; m < m_count; ++m) dst[m] += src[m];
        }
      }
      T* gxc = gx + (n * g.c + c) * g.h * g.w;
      for (std::int64_t h = 0; h < g.h; ++h)
        std::copy(plane + (h + g.ph) * wpad + g.pw, plane + (h + g.ph) * wpad + g.pw + g.w, gxc + h * g.w);
    }
  });
}

// grad_W partial (O x K, leading dimension ld) += the contribution of `count` samples,
// stride 1: sample s has its padded input at slabs + s * slab_size (offs: tap offsets for
// the full padded height) and its G' (O x m_pad) at gsps + s * O * m_pad.
template <class T>
void weight_samples_stride1(std::int64_t count, const T* slabs, std::int64_t slab_size, const T* gsps,
                            std::int64_t m_pad, const std::int64_t* offs, const ConvGeometry& g, T* c,
                            std::int64_t ld) {
  constexpr int DA = 2, DB = kVectorBytes == 16 ? 2 : 6;
  const std::int64_t K = g.k(), gsp_size = g.o * m_pad;
  for (std::int64_t m0 = 0; m0 < m_pad; m0 += kDotChunk) {
    const std::int64_t depth = std::min(kDotChunk, m_pad - m0);
    for (std::int64_t o0 = 0; o0 < g.o; o0 += DA) {
      const int na = static_cast<int>(std::min<std::int64_t>(DA, g.o - o0));
      const auto arow = [&, o0, m0](std::int64_t smp, int a) {
        return gsps + smp * gsp_size + std::min<std::int64_t>(o0 + a, g.o - 1) * m_pad + m0;
      };
      for (std::int64_t k0 = 0; k0 < K; k0 += DB) {
        const int nb = static_cast<int>(std::min<std::int64_t>(DB, K - k0));
        const auto brow = [&, k0, m0](std::int64_t smp, int b) {
          return slabs + smp * slab_size + offs[std::min<std::int64_t>(k0 + b, K - 1)] + m0;
        };
        dot_kernel<T, DA, DB>(count, depth, arow, brow, c + o0 * ld + k0, ld, na, nb);
      }
    }
  }
}

// ---- any stride: im2col tiles ----------------------------------------------------------

// col[k * M + m] = im2col of output rows [oh0, oh1) of one sample, M = (oh1 - oh0) * Wo,
// m = (oh - oh0) * Wo + ow; zero in the padding.
template <class T>
void im2col_tile(const T* xn, const ConvGeometry& g, std::int64_t oh0, std::int64_t oh1, T* col) {
  const std::int64_t m_count = (oh1 - oh0) * g.wo;
  for (std::int64_t k = 0; k < g.k(); ++k) {
    const std::int64_t c = k / (g.kh * g.kw), i = (k / g.kw) % g.kh, j = k % g.kw;
    const T* plane = xn + c * g.h * g.w;
    // Output columns whose input column ow * sw - pw + j lies inside [0, W).
    const std::int64_t lo = std::min(g.wo, std::max<std::int64_t>(0, (g.pw - j + g.sw - 1) / g.sw));
    const std::int64_t last = g.w - 1 + g.pw - j;
    const std::int64_t hi = last < 0 ? lo : std::max(lo, std::min(g.wo, last / g.sw + 1));
    T* dst = col + k * m_count;
    for (std::int64_t oh = oh0; oh < oh1; ++oh, dst += g.wo) {
      const std::int64_t ih = oh * g.sh - g.ph + i;
      if (ih < 0 || ih >= g.h) {
        std::fill(dst, dst + g.wo, T(0));
        continue;
      }
      const T* row = plane + ih * g.w;
      for (std::int64_t ow = 0; ow < lo; ++ow) dst[ow] = T(0);
      for (std::int64_t ow = lo; ow < hi; ++ow) dst[ow] = row[ow * g.sw - g.pw + j];
      for (std::int64_t ow = hi; ow < g.wo; ++ow) dst[ow] = T(0);
    }
  }
}

template <class T>
void forward_tiles(const T* xs, const T* wp, const T* b, T* os, const ConvGeometry& g) {
  constexpr int MB = kCols<T>;
  const std::int64_t K = g.k(), L = g.l(), o_pad = round_up(g.o, kRows);
  const std::int64_t rows = rows_per_tile(g.ho, g.wo * K);
  const std::int64_t blocks = (g.ho + rows - 1) / rows;
  parallel_tasks(g.n * blocks, rows * g.wo * K * g.o / 8 + 1, [&](std::int64_t t) {
    const std::int64_t n = t / blocks, oh0 = (t % blocks) * rows, oh1 = std::min(g.ho, oh0 + rows);
    const std::int64_t m_count = (oh1 - oh0) * g.wo, m_pad = round_up(m_count, MB);
    T* col = scratch<T>(0, K * m_count);
    T* bp = scratch<T>(1, K * m_pad);
    T* c = scratch<T>(2, o_pad * m_pad);
    im2col_tile(xs + n * g.c * g.h * g.w, g, oh0, oh1, col);
    pack_cols(bp, col, m_count, K, m_count);
    tile_gemm<false>(wp, bp, c, m_pad, o_pad, m_pad, K);
    for (std::int64_t o = 0; o < g.o; ++o) {
      const T bo = b ? b[o] : T(0);
      T* dst = os + (n * g.o + o) * L + oh0 * g.wo;
      for (std::int64_t m = 0; m < m_count; ++m) dst[m] = c[o * m_pad + m] + bo;
    }
  });
}

// Adds the im2col-tile grad_x tasks to `tasks`; wtp receives W^T packed and must live until
// the tasks have run.
template <class T>
void backward_input_tiles(const T* go, const T* w, T* gx, const ConvGeometry& g, std::vector<T>& wtp,
                          TaskList& tasks) {
  constexpr int MB = kCols<T>;
  const std::int64_t K = g.k(), L = g.l(), k_pad = round_up(K, kRows);
  wtp.assign(static_cast<std::size_t>(k_pad * g.o), T(0));  // W^T (K x O), packed
  pack_rows(wtp.data(), K, g.o, [&](std::int64_t r, std::int64_t d) { return w[d * K + r]; });
  // Input rows per task: about kTileBudget dcol elements, from the output rows they need.
  const std::int64_t rows = rows_per_tile(g.h, g.wo * std::max<std::int64_t>(1, k_pad / g.sh));
  const std::int64_t blocks = (g.h + rows - 1) / rows;
  const T* wts = wtp.data();
  tasks.add(g.n * blocks, [=, &g](std::int64_t t) {
    const std::int64_t n = t / blocks, h0 = (t % blocks) * rows, h1 = std::min(g.h, h0 + rows);
    // Output rows oh with oh * sh - ph + i in [h0, h1) for some tap i.
    const std::int64_t first = h0 + g.ph - g.kh + 1;
    const std::int64_t oh_a = first <= 0 ? 0 : (first + g.sh - 1) / g.sh;
    const std::int64_t oh_b = std::min(g.ho, (h1 - 1 + g.ph) / g.sh + 1);
    T* gxn = gx + n * g.c * g.h * g.w;
    if (oh_a >= oh_b) {
      for (std::int64_t c = 0; c < g.c; ++c) std::fill(gxn + (c * g.h + h0) * g.w, gxn + (c * g.h + h1) * g.w, T(0));
      return;
    }
    const std::int64_t m_count = (oh_b - oh_a) * g.wo, m_pad = round_up(m_count, MB);
    T* bp = scratch<T>(0, g.o * m_pad);
    T* dcol = scratch<T>(1, k_pad * m_pad);
    pack_cols(bp, go + n * g.o * L + oh_a * g.wo, L, g.o, m_count);
    tile_gemm<false>(wts, bp, dcol, m_pad, k_pad, m_pad, g.o);
    for (std::int64_t c = 0; c < g.c; ++c) {
      for (std::int64_t h = h0; h < h1; ++h) {
        T* dst = gxn + (c * g.h + h) * g.w;
        std::fill(dst, dst + g.w, T(0));
        for (std::int64_t i = 0; i < g.kh; ++i) {
          const std::int64_t th = h + g.ph - i;
          if (th < 0 || th % g.sh != 0 || th / g.sh >= g.ho) continue;
          const T* src_i = dcol + (c * g.kh + i) * g.kw * m_pad + (th / g.sh - oh_a) * g.wo;
          for (std::int64_t j = 0; j < g.kw; ++j) {
            const T* src = src_i + j * m_pad;
            if (g.sw == 1) {  // ow = w + pw - j in [0, Wo)
              const std::int64_t w_lo = std::max<std::int64_t>(0, j - g.pw);
              const std::int64_t w_hi = std::min(g.w, j - g.pw + g.wo);
              for (std::int64_t iw = w_lo; iw < w_hi; ++iw) dst[iw] += src[iw + g.pw - j];
            } else {  // iw = ow * sw - pw + j for ow in [0, Wo), inside [0, W)
              std::int64_t ow = g.pw - j <= 0 ? 0 : (g.pw - j + g.sw - 1) / g.sw;
              for (std::int64_t iw = ow * g.sw - g.pw + j; ow < g.wo && iw < g.w; ++ow, iw += g.sw) dst[iw] += src[ow];
            }
          }
        }
      }
    }
  });
}

// grad_W partial (o_pad x k_pad, leading dimension k_pad) += the contribution of sample n
// from im2col tiles, any stride.
template <class T>
void weight_sample_tiles(const T* gon, const T* xn, const ConvGeometry& g, T* c) {
  constexpr int MB = kCols<T>;
  const std::int64_t K = g.k(), L = g.l(), o_pad = round_up(g.o, kRows), k_pad = round_up(K, MB);
  const std::int64_t rows = rows_per_tile(g.ho, g.wo * (k_pad + K));
  for (std::int64_t oh0 = 0; oh0 < g.ho; oh0 += rows) {
    const std::int64_t oh1 = std::min(g.ho, oh0 + rows), m_count = (oh1 - oh0) * g.wo;
    T* ap = scratch<T>(1, o_pad * m_count);
    T* col = scratch<T>(2, K * m_count);
    T* bp = scratch<T>(3, k_pad * m_count);
    pack_rows(ap, g.o, m_count, [&](std::int64_t r, std::int64_t d) { return gon[r * L + oh0 * g.wo + d]; });
    im2col_tile(xn, g, oh0, oh1, col);
    pack_cols_transposed(bp, col, m_count, m_count, K);
    tile_gemm<true>(ap, bp, c, k_pad, o_pad, k_pad, m_count);
  }
}

// ---- entry points ----------------------------------------------------------------------

template <class T>
void forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, const ConvGeometry& g) {
  const std::int64_t K = g.k(), o_pad = round_up(g.o, kRows);
  const T* w = weight.data_as<T>();
  std::vector<T> wp(static_cast<std::size_t>(o_pad * K));
  pack_rows(wp.data(), g.o, K, [&](std::int64_t r, std::int64_t d) { return w[r * K + d]; });
  const T* b = !bias.defined() ? nullptr : bias.data_as<T>();
  if (g.sh == 1 && g.sw == 1) forward_stride1(x.data_as<T>(), wp.data(), b, out.data_as<T>(), g);
  else forward_tiles(x.data_as<T>(), wp.data(), b, out.data_as<T>(), g);
}

// grad_bias: per (n, o) sums in double (kLanes independent partials combined in a fixed
// order), then over n in order.
template <class T>
class BiasGrad {
 public:
  BiasGrad(const T* go, const ConvGeometry& g) : go_(go), g_(g), part_(static_cast<std::size_t>(g.n * g.o)) {}

  void schedule(TaskList& tasks) {
    tasks.add(g_.n * g_.o, [this](std::int64_t t) { run(t); });
  }

  void finish(T* gb, bool accumulate) const {
    for (std::int64_t o = 0; o < g_.o; ++o) {
      double acc = 0.0;
      for (std::int64_t n = 0; n < g_.n; ++n) acc += part_[static_cast<std::size_t>(n * g_.o + o)];
      gb[o] = accumulate ? static_cast<T>(gb[o] + static_cast<T>(acc)) : static_cast<T>(acc);
    }
  }

 private:
  void run(std::int64_t t) {
    constexpr int kLanes = 8;
    const std::int64_t L = g_.l();
    const T* src = go_ + t * L;
    double lanes[kLanes] = {};
    std::int64_t l = 0;
    for (; l + kLanes <= L; l += kLanes)
      for (int v = 0; v < kLanes; ++v) lanes[v] += static_cast<double>(src[l + v]);
    for (; l < L; ++l) lanes[0] += static_cast<double>(src[l]);
    double acc = 0.0;
    for (double v : lanes) acc += v;
    part_[static_cast<std::size_t>(t)] = acc;
  }

  const T* go_;
  const ConvGeometry& g_;
  std::vector<double> part_;
};

// grad_W: per fixed group of samples a partial (o_pad x k_pad), summed in group order.
template <class T>
class WeightGrad {
 public:
  WeightGrad(const T* go, const T* xs, const ConvGeometry& g) : go_(go), xs_(xs), g_(g) {
    constexpr int MB = kCols<T>;
    o_pad_ = round_up(g.o, kRows);
    k_pad_ = round_up(g.k(), MB);
    groups_ = std::clamp<std::int64_t>(kPartialBudget / (o_pad_ * k_pad_), 1, std::min(g.n, kMaxGroups));
    per_group_ = (g.n + groups_ - 1) / groups_;
    stride1_ = g.sh == 1 && g.sw == 1;
    hpad_ = g.h + 2 * g.ph;
    wpad_ = g.w + 2 * g.pw;
    slack_ = g.kw + MB;
    off_ = tap_offsets(g, hpad_);
    partial_.resize(static_cast<std::size_t>(groups_ * o_pad_ * k_pad_));
    // Stride 1: the group's samples run through the dot kernels in batches, their padded
    // inputs and G' side by side in scratch (about kTileBudget * 4 elements).
    slab_size_ = g.c * hpad_ * wpad_ + slack_;
    m_pad_ = round_up(g.ho * wpad_, kVectorBytes / sizeof(T));
    batch_ = std::clamp<std::int64_t>(4 * kTileBudget / (slab_size_ + g.o * m_pad_), 1, per_group_);
  }

  void schedule(TaskList& tasks) {
    tasks.add(groups_, [this](std::int64_t grp) { run(grp); });
  }

  // Group partials summed in group order a row at a time into the first group's row, then
  // stored (or added: accumulate gives exactly old + the fresh gradient). Threads only for
  // large weights: a fork and join costs more than a few thousand additions.
  void finish(T* gw, bool accumulate) {
    const std::int64_t K = g_.k();
    parallel_tasks(g_.o, groups_ * K / 32, [&](std::int64_t o) {
      T* sum = partial_.data() + o * k_pad_;
      for (std::int64_t grp = 1; grp < groups_; ++grp) {
        const T* src = partial_.data() + (grp * o_pad_ + o) * k_pad_;
        for (std::int64_t k = 0; k < K; ++k) sum[k] += src[k];
      }
      T* dst = gw + o * K;
      if (accumulate) {
        for (std::int64_t k = 0; k < K; ++k) dst[k] += sum[k];
      } else {
        std::copy(sum, sum + K, dst);
      }
    });
  }

 private:
  void run(std::int64_t grp) {
    const ConvGeometry& g = g_;
    const std::int64_t L = g.l();
    T* c = partial_.data() + grp * o_pad_ * k_pad_;
    std::fill(c, c + o_pad_ * k_pad_, T(0));
    const std::int64_t n_end = std::min(g.n, (grp + 1) * per_group_);
    for (std::int64_t n0 = grp * per_group_; n0 < n_end; n0 += batch_) {
      std::int64_t count = 0;
      T* slabs = stride1_ ? scratch<T>(0, batch_ * slab_size_) : nullptr;
      T* gsps = stride1_ ? scratch<T>(4, batch_ * g.o * m_pad_) : nullptr;
      for (std::int64_t n = n0; n < std::min(n_end, n0 + batch_); ++n) {
        const T* xn = xs_ + n * g.c * g.h * g.w;
        const T* gon = go_ + n * g.o * L;
        // The padded pixels meet zeros of G', exact only for a finite x.
        if (stride1_ && pad_slab(xn, g, 0, hpad_, slabs + count * slab_size_, slack_)) {
          spread_rows(gon, g, gsps + count * g.o * m_pad_, m_pad_);
          ++count;
        } else {
          weight_sample_tiles(gon, xn, g, c);
        }
      }
      if (count > 0) weight_samples_stride1(count, slabs, slab_size_, gsps, m_pad_, off_.data(), g, c, k_pad_);
    }
  }

  const T* go_;
  const T* xs_;
  const ConvGeometry& g_;
  std::int64_t o_pad_, k_pad_, groups_, per_group_, hpad_, wpad_, slack_, slab_size_, m_pad_, batch_;
  bool stride1_;
  std::vector<std::int64_t> off_;
  std::vector<T> partial_;
};

// grad_x tasks: the stride-1 path works on whole samples (G', dcol over all output rows), so
// it is kept to samples of moderate size; it multiplies W by zeros, exact only for a finite W.
template <class T>
void backward_input(const T* go, const T* w, T* gx, const ConvGeometry& g, std::vector<T>& wtp, TaskList& tasks) {
  const std::int64_t m_pad = round_up(g.ho * (g.w + 2 * g.pw), kCols<T>);
  const bool small = m_pad * (2 * g.o + 256 + kRows + g.kh * g.kw) <= kSampleBudget;
  if (g.sh == 1 && g.sw == 1 && small && std::all_of(w, w + g.o * g.k(), [](T v) { return finite(v); }))
    backward_input_stride1(go, w, gx, g, wtp, tasks);
  else
    backward_input_tiles(go, w, gx, g, wtp, tasks);
}

// All wanted gradients in one parallel region: grad_W groups (the heaviest tasks) first,
// then grad_x, then the grad_bias sums; the small reductions follow.
template <class T>
void backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& grad_x,
              const Tensor& grad_weight, const Tensor& grad_bias, const ConvGeometry& g, bool accumulate) {
  const T* go = grad_out.data_as<T>();
  TaskList tasks;
  std::optional<WeightGrad<T>> wgrad;
  std::optional<BiasGrad<T>> bgrad;
  std::vector<T> wtp;
  if (!!grad_weight.defined()) wgrad.emplace(go, x.data_as<T>(), g).schedule(tasks);
  if (!!grad_x.defined()) backward_input(go, weight.data_as<T>(), grad_x.data_as<T>(), g, wtp, tasks);
  if (!!grad_bias.defined()) bgrad.emplace(go, g).schedule(tasks);
  tasks.run();
  if (wgrad) wgrad->finish(grad_weight.data_as<T>(), accumulate);
  if (bgrad) bgrad->finish(grad_bias.data_as<T>(), accumulate);
}

}  // namespace

void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, std::int64_t stride_h,
            std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  const ConvGeometry g = conv_geometry(x, weight, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(x.dtype(), [&](auto tag) { forward<decltype(tag)>(x, weight, bias, out, g); });
}

void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight, const Tensor& grad_x,
                     const Tensor& grad_weight, const Tensor& grad_bias, std::int64_t stride_h, std::int64_t stride_w,
                     std::int64_t pad_h, std::int64_t pad_w, bool accumulate) {
  const ConvGeometry g = conv_geometry(x, weight, stride_h, stride_w, pad_h, pad_w);
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    backward<decltype(tag)>(grad_out, x, weight, grad_x, grad_weight, grad_bias, g, accumulate);
  });
}

}  // namespace seisoku::cpu
