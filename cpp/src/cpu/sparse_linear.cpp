// CPU kernels of the sparse linear layer: out (N, R) = act(x (N, C) A^T + bias) with A (R x C)
// in compressed sparse rows, and its backward (grad_x = grad_z A through A's transpose, whose
// rows the pattern also holds; grad of A's values = (grad_z^T x) at the nonzeros).
//
// Layout: for N >= kMinColumnBatch, x is first transposed into xt (C, ld) with ld = N rounded
// up to whole vectors (pad lanes zero), so that one nonzero a[r, c] costs one contiguous
// N-wide multiply-add acc[r, :] += a * xt[c, :] (a dense product would spend R * C of those).
// A task takes a chunk of kRowChunk rows of A and a block of at most kBlockVectors vectors of
// the batch: per row the accumulators stay in registers over the row's nonzeros (ascending
// columns), then bias and activation are applied and the chunk's tile is transposed into out.
// The rows of xt that a row picks are read from L2 (C x N floats: 400 KB for 784 x 128), about
// one vector a cycle, where the dense GEMM does two multiply-adds a cycle from L1: this pays
// below about half nonzeros, and 90% / 95% pruned 800 -> 800 layers at batch 64-128 take about
// 4x / 7-8x less time than dense (AMD EPYC, AVX-512). Blocking over C (so that a slab of xt
// stays in L1 for many rows) measured no better: a row picks too few of a slab's rows.
// For N < kMinColumnBatch (one to three samples; two to three cost the transposed layout two
// to three times a single sample's time, as a vector of xt holds up to 16 samples), each
// output is a gather-dot over the row's nonzeros from x's row in place, up to four samples per
// pass over a row. Loads bound it: per four nonzeros, one load of their values, two of their
// columns (two 32-bit columns a load) and four of x: 1.75 loads a nonzero instead of three;
// a 95% pruned 800 x 800 weight (32K nonzeros) takes about 8 us a sample on AMD EPYC (Zen 4),
// 12 us with three loads a nonzero. Sliced rows (SELL-16-sigma: 16 rows a vector, column by
// column, one vector gather of x per step) measured no faster there: 2x slower with the values
// gathered from CSR order too, about as fast as three loads a nonzero with them copied into
// slice order (a copy that a changed value would make stale); a vector gather fetches about
// one element a cycle there.
//
// The value gradient is a sampled product: for each nonzero (r, c), dot(gzt[r, :], xt[c, :])
// over the batch, four nonzeros at a time (independent chains), each reduced lane by lane.
//
// Every output element is one fixed chain of operations (the same for any thread count and
// any split), so results are the same bits for 1 or N threads.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "kernels/nn_math.hpp"
#include "kernels/sparse_linear.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace seisoku::cpu {
namespace {

constexpr std::int64_t kMinColumnBatch = 4;  // smaller batches (forward): gather-dots per sample
constexpr std::int64_t kMinBackwardColumnBatch = 2;  // the same for the backward
constexpr std::int64_t kGatherSamples = 4;   // samples per pass of the gather-dots over a row
constexpr std::int64_t kRowChunk = 16;       // rows of A per task (the tile's rows)
constexpr std::int64_t kGatherRows = 64;     // rows of A per task of the gather-dots
constexpr int kBlockVectors = 8;             // most vectors of a batch block
constexpr std::int64_t kTransposeCols = 64;  // columns of x per transpose task
constexpr std::size_t kKeptBytes = std::size_t{16} << 20;
// Multiply-add lanes below which a product runs on the calling thread: waking a team costs
// 10 us and more (far more on a loaded machine), the work of some 60K vector multiply-adds.
constexpr std::int64_t kMinParallelWork = std::int64_t{1} << 20;

template <class T>
constexpr std::int64_t lanes() {
  return static_cast<std::int64_t>(sizeof(typename Simd<T>::V) / sizeof(T));
}

// A thread's scratch (slot 0: the transposed left operand; 1: a task's tile; 2: the transposed
// input in backward): grown on demand, given back when over 4x too large and over kKeptBytes.
template <class T>
T* scratch(int slot, std::int64_t n) {
  thread_local std::vector<T> buffers[3];
  std::vector<T>& v = buffers[slot];
  const auto need = static_cast<std::size_t>(n);
  if (v.size() > 4 * need && v.size() * sizeof(T) > kKeptBytes) std::vector<T>().swap(v);
  if (v.size() < need) v.resize(need);
  return v.data();
}

// Columns [c0, c1) of x (n, cols) into rows c0.. of xt (cols, ld), pad lanes [n, ld) zero.
template <class T>
void transpose_columns(const T* x, std::int64_t n, std::int64_t cols, std::int64_t c0, std::int64_t c1, T* xt,
                       std::int64_t ld) {
  transpose(x + c0, cols, n, c1 - c0, xt + c0 * ld, ld);
  if (ld > n)
    for (std::int64_t c = c0; c < c1; ++c) std::fill(xt + c * ld + n, xt + (c + 1) * ld, T(0));
}

template <class T>
std::int64_t transpose_tasks(std::int64_t cols) {
  return (cols + kTransposeCols - 1) / kTransposeCols;
}

template <class T>
void transpose_task(std::int64_t t, const T* x, std::int64_t n, std::int64_t cols, T* xt, std::int64_t ld) {
  const std::int64_t c0 = t * kTransposeCols;
  transpose_columns(x, n, cols, c0, std::min(cols, c0 + kTransposeCols), xt, ld);
}

// The operand of a product: A's rows (ptr, idx), values val (through pos when POS: A = W^T).
template <class T>
struct Csr {
  const std::int64_t* ptr;
  const std::int32_t* idx;
  const std::int32_t* pos;
  const T* val;
};

template <class T, bool POS>
inline T value(const Csr<T>& a, std::int64_t e) {
  if constexpr (POS) return a.val[a.pos[e]];
  else return a.val[e];
}

// Rows [r0, r1) of A times the batch block bt (xt's columns from c0, row stride ld, NV vectors)
// into tile rows (stride NV * W), then bias and activation. With few vectors a row's
// nonzeros alternate between S sets of accumulators (so that S * NV chains run at once),
// added in a fixed order at the end.
template <class T, int NV, bool POS, Activation ACT>
void row_block(const Csr<T>& a, const T* bt, std::int64_t ld, std::int64_t r0, std::int64_t r1, const T* bias,
               T slope, T* tile) {
  using V = typename Simd<T>::V;
  constexpr int W = static_cast<int>(lanes<T>());
  constexpr int S = NV >= 4 ? 1 : 4 / NV;
  constexpr int L = NV * W;
  for (std::int64_t r = r0; r < r1; ++r) {
    V acc[S][NV];
    for (int s = 0; s < S; ++s)
      for (int v = 0; v < NV; ++v) acc[s][v] = V{};
    std::int64_t e = a.ptr[r];
    const std::int64_t end = a.ptr[r + 1];
    for (; e + S <= end; e += S) {
      for (int s = 0; s < S; ++s) {
        const V w = vsplat<V>(value<T, POS>(a, e + s));
        const T* br = bt + static_cast<std::int64_t>(a.idx[e + s]) * ld;
        for (int v = 0; v < NV; ++v) acc[s][v] = vfma(w, vload<V>(br + v * W), acc[s][v]);
      }
    }
    for (int s = 0; e < end; ++e, ++s) {
      const V w = vsplat<V>(value<T, POS>(a, e));
      const T* br = bt + static_cast<std::int64_t>(a.idx[e]) * ld;
      for (int v = 0; v < NV; ++v) acc[s][v] = vfma(w, vload<V>(br + v * W), acc[s][v]);
    }
    if constexpr (S == 4) {
      for (int v = 0; v < NV; ++v) acc[0][v] = (acc[0][v] + acc[1][v]) + (acc[2][v] + acc[3][v]);
    } else if constexpr (S == 2) {
      for (int v = 0; v < NV; ++v) acc[0][v] = acc[0][v] + acc[1][v];
    }
    T* tr = tile + (r - r0) * L;
    for (int v = 0; v < NV; ++v) vstore(tr + v * W, acc[0][v]);
    if (bias != nullptr || ACT != Activation::identity) {
      const T b = bias != nullptr ? bias[r] : T(0);
      const T sl = slope;
      for (int j = 0; j < L; ++j) tr[j] = detail::act_forward<T>(tr[j] + b, ACT, sl);
    }
  }
}

template <class T, bool POS, Activation ACT, int NV = kBlockVectors>
void row_block_n(int nv, const Csr<T>& a, const T* bt, std::int64_t ld, std::int64_t r0, std::int64_t r1,
                 const T* bias, T slope, T* tile) {
  if constexpr (NV > 0) {
    if (nv == NV) return row_block<T, NV, POS, ACT>(a, bt, ld, r0, r1, bias, slope, tile);
    row_block_n<T, POS, ACT, NV - 1>(nv, a, bt, ld, r0, r1, bias, slope, tile);
  }
}

// Four lanes of T and a fused multiply-add on them (lane by lane the same as sfma).
template <class T>
struct Four;
template <>
struct Four<float> {
  typedef float V __attribute__((vector_size(16)));
};
template <>
struct Four<double> {
  typedef double V __attribute__((vector_size(32)));
};
template <class T>
using Lanes4 = typename Four<T>::V;

// acc = a * b + acc lane by lane (by reference: no vector passes through a call's registers).
template <class T>
inline void fma4(const Lanes4<T>& a, const Lanes4<T>& b, Lanes4<T>& acc) {
#if defined(__FMA__)
  if constexpr (std::is_same_v<T, float>) acc = _mm_fmadd_ps(a, b, acc);
  else acc = _mm256_fmadd_pd(a, b, acc);
#else
  acc = a * b + acc;
#endif
}

// The columns of nonzeros e .. e + 3, read as two 8-byte words where the CPU stores the low
// half first (one load for two columns: the loads bound these products).
inline void columns4(const std::int32_t* idx, std::int64_t e, std::int64_t* c) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  std::uint64_t p[2];
  std::memcpy(p, idx + e, sizeof(p));
  c[0] = static_cast<std::uint32_t>(p[0]);
  c[1] = static_cast<std::int64_t>(p[0] >> 32);
  c[2] = static_cast<std::uint32_t>(p[1]);
  c[3] = static_cast<std::int64_t>(p[1] >> 32);
#else
  for (int k = 0; k < 4; ++k) c[k] = idx[e + k];
#endif
}

// Rows [r0, r1) of A against NB rows of x in place (row stride ldx): out[b, r] = act(sum
// a[r, c] x[b, c] + bias[r]), four chains over the nonzeros per sample (nonzero e in chain
// e mod 4, the four in the lanes of one vector; vector gathers of x measured slower here, 8 or
// 16 lanes, on AMD EPYC with AVX-512). The samples share each nonzero's column and value
// loads, and a value takes a quarter of a load (four in one) and a column half of one: 0.75 + NB
// loads a nonzero instead of 3 NB.
template <class T, bool POS, Activation ACT, int NB>
void row_gather_block(const Csr<T>& a, const T* x, std::int64_t ldx, std::int64_t r0, std::int64_t r1, const T* bias,
                      T slope, T* out, std::int64_t ldo) {
  using V = Lanes4<T>;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t begin = a.ptr[r], end = a.ptr[r + 1];
    V s[NB];
    for (int b = 0; b < NB; ++b) s[b] = V{};
    std::int64_t e = begin;
    for (; e + 4 <= end; e += 4) {
      V w;
      if constexpr (POS) w = V{a.val[a.pos[e]], a.val[a.pos[e + 1]], a.val[a.pos[e + 2]], a.val[a.pos[e + 3]]};
      else std::memcpy(&w, a.val + e, sizeof(V));
      std::int64_t c[4];
      columns4(a.idx, e, c);
      for (int b = 0; b < NB; ++b) {
        const T* xb = x + b * ldx;
        const V xv = {xb[c[0]], xb[c[1]], xb[c[2]], xb[c[3]]};
        fma4<T>(w, xv, s[b]);
      }
    }
    T s0[NB];
    for (int b = 0; b < NB; ++b) s0[b] = s[b][0];
    for (; e < end; ++e) {
      const T w = value<T, POS>(a, e);
      const std::int64_t c = a.idx[e];
      for (int b = 0; b < NB; ++b) s0[b] = sfma(w, x[b * ldx + c], s0[b]);
    }
    const T bb = bias != nullptr ? bias[r] : T(0);
    for (int b = 0; b < NB; ++b) {
      const T z = (s0[b] + s[b][1]) + (s[b][2] + s[b][3]) + bb;
      out[b * ldo + r] = detail::act_forward<T>(z, ACT, slope);
    }
  }
}

// The same for all n samples, kGatherSamples at a time.
template <class T, bool POS, Activation ACT>
void row_gather(const Csr<T>& a, const T* x, std::int64_t ldx, std::int64_t n, std::int64_t r0, std::int64_t r1,
                const T* bias, T slope, T* out, std::int64_t ldo) {
  for (std::int64_t b = 0; b < n; b += kGatherSamples) {
    const T* xb = x + b * ldx;
    T* ob = out + b * ldo;
    switch (std::min(n - b, kGatherSamples)) {
      case 1: row_gather_block<T, POS, ACT, 1>(a, xb, ldx, r0, r1, bias, slope, ob, ldo); break;
      case 2: row_gather_block<T, POS, ACT, 2>(a, xb, ldx, r0, r1, bias, slope, ob, ldo); break;
      case 3: row_gather_block<T, POS, ACT, 3>(a, xb, ldx, r0, r1, bias, slope, ob, ldo); break;
      default: row_gather_block<T, POS, ACT, 4>(a, xb, ldx, r0, r1, bias, slope, ob, ldo); break;
    }
  }
}

// The product task plan over A's rows and the batch blocks of xt.
struct Plan {
  std::int64_t chunks;  // of kRowChunk rows
  std::int64_t blocks;  // of the batch's vectors, of equal widths but for one vector
  std::int64_t vectors; // whole vectors of the padded batch
  std::int64_t first(std::int64_t j) const { return j * vectors / blocks; }
  std::int64_t tasks() const { return chunks * blocks; }
};

inline Plan plan(std::int64_t rows, std::int64_t ld, std::int64_t w) {
  const std::int64_t vectors = ld / w;
  return {(rows + kRowChunk - 1) / kRowChunk, (vectors + kBlockVectors - 1) / kBlockVectors, vectors};
}

// Task t of the plan: out[:, rows of the chunk] for the batch block's samples (n in all).
template <class T, bool POS, Activation ACT>
void product_task(std::int64_t t, const Plan& p, const Csr<T>& a, std::int64_t rows, const T* bt, std::int64_t ld,
                  std::int64_t n, const T* bias, T slope, T* out) {
  constexpr std::int64_t W = lanes<T>();
  const std::int64_t j = t % p.blocks, chunk = t / p.blocks;
  const std::int64_t r0 = chunk * kRowChunk, r1 = std::min(rows, r0 + kRowChunk);
  const std::int64_t v0 = p.first(j), nv = p.first(j + 1) - v0, c0 = v0 * W;
  T* tile = scratch<T>(1, kRowChunk * kBlockVectors * W);
  row_block_n<T, POS, ACT>(static_cast<int>(nv), a, bt + c0, ld, r0, r1, bias, slope, tile);
  const std::int64_t valid = std::min(n, c0 + nv * W) - c0;
  if (valid > 0) transpose(tile, nv * W, r1 - r0, valid, out + c0 * rows + r0, rows);
}

// out (n, rows) = act(x (n, cols) A^T + bias).
template <class T, bool POS, Activation ACT>
void product(const Csr<T>& a, std::int64_t rows, const T* x, std::int64_t n, std::int64_t cols, const T* bias,
             T slope, T* out) {
  const std::int64_t nnz = a.ptr[rows];
  if (n < kMinColumnBatch) {
    const std::int64_t tasks = (rows + kGatherRows - 1) / kGatherRows;
    two_phases(
        0, [](std::int64_t) {}, tasks,
        [=](std::int64_t t) {
          const std::int64_t r0 = t * kGatherRows;
          row_gather<T, POS, ACT>(a, x, cols, n, r0, std::min(rows, r0 + kGatherRows), bias, slope, out, rows);
        },
        (nnz + rows) * n >= kMinParallelWork);
    return;
  }
  constexpr std::int64_t W = lanes<T>();
  const std::int64_t ld = (n + W - 1) / W * W;
  T* xt = scratch<T>(0, cols * ld);
  const Plan p = plan(rows, ld, W);
  two_phases(
      transpose_tasks<T>(cols), [=](std::int64_t t) { transpose_task(t, x, n, cols, xt, ld); }, p.tasks(),
      [=](std::int64_t t) { product_task<T, POS, ACT>(t, p, a, rows, xt, ld, n, bias, slope, out); },
      (nnz + rows) * ld >= kMinParallelWork);
}

// The sum of a vector's lanes, in one fixed order (a halving tree where the build has
// AVX-512 or AVX, else lane by lane).
template <class T>
T lane_sum(typename Simd<T>::V v) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return _mm512_reduce_add_ps(v);
  else return _mm512_reduce_add_pd(v);
#elif defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  } else {
    const __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
#else
  T s = T(0);
  for (std::int64_t i = 0; i < lanes<T>(); ++i) s += v[i];
  return s;
#endif
}

// Value gradients of rows [r0, r1): g[e] (+)= dot(gzt[r, :], xt[c_e, :]) over ld lanes (the
// pads are zero in both), four nonzeros at a time.
template <class T>
void row_sddmm(const Csr<T>& a, const T* gzt, const T* xt, std::int64_t ld, std::int64_t r0, std::int64_t r1, T* g,
               bool add) {
  using V = typename Simd<T>::V;
  constexpr std::int64_t W = lanes<T>();
  const std::int64_t nvec = ld / W;
  for (std::int64_t r = r0; r < r1; ++r) {
    const T* gr = gzt + r * ld;
    std::int64_t e = a.ptr[r];
    const std::int64_t end = a.ptr[r + 1];
    for (; e + 4 <= end; e += 4) {
      const T* x0 = xt + static_cast<std::int64_t>(a.idx[e]) * ld;
      const T* x1 = xt + static_cast<std::int64_t>(a.idx[e + 1]) * ld;
      const T* x2 = xt + static_cast<std::int64_t>(a.idx[e + 2]) * ld;
      const T* x3 = xt + static_cast<std::int64_t>(a.idx[e + 3]) * ld;
      V s0{}, s1{}, s2{}, s3{};
      for (std::int64_t v = 0; v < nvec; ++v) {
        const V gv = vload<V>(gr + v * W);
        s0 = vfma(gv, vload<V>(x0 + v * W), s0);
        s1 = vfma(gv, vload<V>(x1 + v * W), s1);
        s2 = vfma(gv, vload<V>(x2 + v * W), s2);
        s3 = vfma(gv, vload<V>(x3 + v * W), s3);
      }
      const T d[4] = {lane_sum<T>(s0), lane_sum<T>(s1), lane_sum<T>(s2), lane_sum<T>(s3)};
      for (int k = 0; k < 4; ++k) g[e + k] = add ? g[e + k] + d[k] : d[k];
    }
    for (; e < end; ++e) {
      const T* x0 = xt + static_cast<std::int64_t>(a.idx[e]) * ld;
      V s0{};
      for (std::int64_t v = 0; v < nvec; ++v) s0 = vfma(vload<V>(gr + v * W), vload<V>(x0 + v * W), s0);
      const T d = lane_sum<T>(s0);
      g[e] = add ? g[e] + d : d;
    }
  }
}

// The same for few samples, from grad_z (n, rows) and x (n, cols) in place.
template <class T>
void row_sddmm_gather(const Csr<T>& a, const T* gz, std::int64_t rows, const T* x, std::int64_t cols, std::int64_t n,
                      std::int64_t r0, std::int64_t r1, T* g, bool add) {
  for (std::int64_t r = r0; r < r1; ++r)
    for (std::int64_t e = a.ptr[r]; e < a.ptr[r + 1]; ++e) {
      T s = T(0);
      for (std::int64_t b = 0; b < n; ++b) s = sfma(gz[b * rows + r], x[b * cols + a.idx[e]], s);
      g[e] = add ? g[e] + s : s;
    }
}

template <class T>
Csr<T> rows_of(const SparsePattern& w, const Tensor& values) {
  return {w.row_ptr.data_as<std::int64_t>(), w.col_idx.data_as<std::int32_t>(), nullptr, values.data_as<T>()};
}

template <class T>
Csr<T> columns_of(const SparsePattern& w, const Tensor& values) {
  return {w.t_ptr.data_as<std::int64_t>(), w.t_row_idx.data_as<std::int32_t>(), w.t_pos.data_as<std::int32_t>(),
          values.data_as<T>()};
}

}  // namespace

void sparse_linear(const Tensor& x, const SparsePattern& w, const Tensor& values, const Tensor& bias,
                   const Tensor& out, Activation act, double slope) {
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Csr<T> a = rows_of<T>(w, values);
    const T* b = bias.defined() ? bias.data_as<T>() : nullptr;
    detail::dispatch_activation(act, [&](auto ac) {
      constexpr Activation A = decltype(ac)::value;
      product<T, false, A>(a, w.rows, x.data_as<T>(), x.shape()[0], w.cols, b, static_cast<T>(slope),
                           out.data_as<T>());
    });
  });
}

void sparse_linear_backward(const Tensor& grad_z, const Tensor& x, const SparsePattern& w, const Tensor& values,
                            const Tensor& grad_x, const Tensor& grad_values, bool accumulate) {
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t n = x.shape()[0], rows = w.rows, cols = w.cols, nnz = w.nnz();
    const T* gz = grad_z.data_as<T>();
    const T* xs = x.data_as<T>();
    const Csr<T> a = rows_of<T>(w, values), at = columns_of<T>(w, values);
    T* gx = grad_x.defined() ? grad_x.data_as<T>() : nullptr;
    T* gv = grad_values.defined() ? grad_values.data_as<T>() : nullptr;
    const bool add = accumulate;
    if (n < kMinBackwardColumnBatch) {
      if (gx != nullptr) product<T, true, Activation::identity>(at, cols, gz, n, rows, nullptr, T(0), gx);
      if (gv != nullptr) {
        const std::int64_t tasks = (rows + kGatherRows - 1) / kGatherRows;
        two_phases(
            0, [](std::int64_t) {}, tasks,
            [=](std::int64_t t) {
              const std::int64_t r0 = t * kGatherRows;
              row_sddmm_gather(a, gz, rows, xs, cols, n, r0, std::min(rows, r0 + kGatherRows), gv, add);
            },
            (nnz + rows) * n >= kMinParallelWork);
      }
      return;
    }
    // One team for both phases: transposes of grad_z (and of x for the values), then the input
    // gradient's tasks (over W^T's rows) and the value gradient's (over W's rows).
    constexpr std::int64_t W = lanes<T>();
    const std::int64_t ld = (n + W - 1) / W * W;
    T* gzt = scratch<T>(0, rows * ld);
    T* xt = gv != nullptr ? scratch<T>(2, cols * ld) : nullptr;
    const std::int64_t n_gz = transpose_tasks<T>(rows), n_x = gv != nullptr ? transpose_tasks<T>(cols) : 0;
    const Plan p = plan(cols, ld, W);
    const std::int64_t n_gx = gx != nullptr ? p.tasks() : 0;
    const std::int64_t n_gv = gv != nullptr ? (rows + kRowChunk - 1) / kRowChunk : 0;
    two_phases(
        n_gz + n_x,
        [=](std::int64_t t) {
          if (t < n_gz) transpose_task(t, gz, n, rows, gzt, ld);
          else transpose_task(t - n_gz, xs, n, cols, xt, ld);
        },
        n_gx + n_gv,
        [=](std::int64_t t) {
          if (t < n_gx) {
            product_task<T, true, Activation::identity>(t, p, at, cols, gzt, ld, n, nullptr, T(0), gx);
          } else {
            const std::int64_t r0 = (t - n_gx) * kRowChunk;
            row_sddmm(a, gzt, xt, ld, r0, std::min(rows, r0 + kRowChunk), gv, add);
          }
        },
        (2 * nnz + rows + cols) * ld >= kMinParallelWork);
  });
}

}  // namespace seisoku::cpu
