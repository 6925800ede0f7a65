// CPU products whose left operand is mostly zeros: C (+)= op(A) op(B) over the nonzero
// entries of op(A) only. ReLU and dropout make a layer's outputs, and the gradients behind
// them, mostly zeros (with ReLU and dropout 0.5 about three quarters), so the Linear layers
// multiply through here when op(A) is sparse enough and through the dense GEMM otherwise.
//
// op(A) is first compacted, row by row, into its nonzero values and their column indices in
// ascending order (a row's list starts at row * k; float rows 8 values at a time by AVX2
// left-packing; with op(A) = A^T, chunks of A's columns are transposed into rows first). Each
// task then takes a block of rows and of kBlockVectors vectors of C's columns: per row, the
// accumulators run one fused multiply-add per nonzero, in ascending column order, over the
// matching rows of op(B) (read in place, or for op(B) = B^T packed block by block). Every
// element of C is one such chain, whatever the tasks and the other rows, so results are the
// same bits for any thread count and a row of C does not depend on op(A)'s other rows.
//
// Each nonzero costs one load of op(B) per multiply-add (a dense product reuses each load
// across a tile of rows), so this pays below about 40% nonzeros: at 25% it runs about 1.5x
// faster than the dense GEMM here (2-core AMD EPYC, AVX2).
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "kernels/core.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace seisoku::cpu {
namespace {

constexpr double kMaxDensity = 0.4;                     // nonzero share of op(A) up to which this pays
constexpr std::int64_t kMinWork = std::int64_t{1} << 20;  // dense multiply-adds below which it does not
constexpr std::int64_t kProbe = 4096;                   // entries of op(A) sampled before compacting
constexpr int kBlockVectors = 8;                        // vectors of C per row pass
constexpr std::int64_t kRowChunk = 32;                  // rows of C per pass over a block of op(B)
constexpr std::int64_t kPackedTaskRows = 128;           // rows of C per task that packs its block
constexpr std::int64_t kCompactChunk = 32;              // rows of op(A) per compaction task
constexpr std::int64_t kDepthChunk = 64;                // rows of op(B) per pass: 16 KiB of a block, in L1
constexpr std::int64_t kMaxDepth = std::int64_t{1} << 18;  // longer k: the per-thread block buffer would be large

// Nonzero share of an evenly strided sample of op(A)'s entries (all of them when few).
template <class T>
double probe_density(const T* a, std::int64_t count) {
  const std::int64_t step = std::max<std::int64_t>(1, count / kProbe);
  std::int64_t seen = 0, nonzero = 0;
  for (std::int64_t i = 0; i < count; i += step, ++seen) nonzero += a[i] != T(0);
  return static_cast<double>(nonzero) / static_cast<double>(seen);
}

#if defined(__AVX2__)
// Lane order of each 8-bit mask's set lanes, first: the permutation that packs them left.
struct PackTable {
  alignas(32) std::int32_t lanes[256][8];
  constexpr PackTable() : lanes() {
    for (int mask = 0; mask < 256; ++mask) {
      int n = 0;
      for (int lane = 0; lane < 8; ++lane)
        if (mask & (1 << lane)) lanes[mask][n++] = lane;
    }
  }
};
constexpr PackTable kPackTable;

// The nonzeros of row[0, k) and their indices, 8 values at a time packed left with one lane
// permutation; returns how many, and in *done where it stopped (a multiple of 8; the caller
// finishes the row). Every store writes 8 lanes, so it stops before they would pass the
// row's k slots.
inline std::int64_t left_pack(const float* row, std::int64_t k, std::int32_t* ix, float* vv, std::int64_t* done) {
  std::int64_t n = 0, j = 0;
  const __m256i step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (; j + 8 <= k && n + 8 <= k; j += 8) {
    const __m256 v = _mm256_loadu_ps(row + j);
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ));
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPackTable.lanes[mask]));
    _mm256_storeu_ps(vv + n, _mm256_permutevar8x32_ps(v, perm));
    const __m256i at = _mm256_add_epi32(_mm256_set1_epi32(static_cast<std::int32_t>(j)), step);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ix + n), _mm256_permutevar8x32_epi32(at, perm));
    n += __builtin_popcount(static_cast<unsigned>(mask));
  }
  *done = j;
  return n;
}
#endif

// Sizes v for n elements: grown on demand and kept for the next product, but given back
// when it holds over 4x what is needed and more than kKeptBytes, so that one large product
// does not hold its memory for the life of the thread.
constexpr std::size_t kKeptBytes = std::size_t{16} << 20;
template <class E>
E* fit(std::vector<E>& v, std::int64_t n) {
  const auto need = static_cast<std::size_t>(n);
  if (v.size() > 4 * need && v.size() * sizeof(E) > kKeptBytes) std::vector<E>().swap(v);
  if (v.size() < need) v.resize(need);
  return v.data();
}

// A thread's scratch (slot 0: a block of op(B); 1: partial sums; 2: rows of op(A) to
// compact).
template <class T>
T* scratch(int slot, std::int64_t n) {
  thread_local std::vector<T> buffers[3];
  return fit(buffers[slot], n);
}

// The nonzeros of row[0, k) and their indices into ix / vv; returns how many.
template <class T>
std::int64_t compact_row(const T* row, std::int64_t k, std::int32_t* ix, T* vv) {
  std::int64_t n = 0, j = 0;
#if defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) n = left_pack(row, k, ix, vv, &j);
#endif
  for (; j < k; ++j) {  // written always, kept when nonzero: no branch
    const T v = row[j];
    ix[n] = static_cast<std::int32_t>(j);
    vv[n] = v;
    n += v != T(0);
  }
  return n;
}

// Row r of op(A) (m x k) into idx / val from r * k on, count[r] entries; returns the total.
// With op(A) = a^T, a chunk of op(A)'s rows (a's columns) is transposed into scratch first.
template <class T>
std::int64_t compact(const T* a, std::int64_t lda, bool trans_a, std::int64_t m, std::int64_t k, std::int32_t* idx,
                     T* val, std::int64_t* count) {
  const std::int64_t chunks = (m + kCompactChunk - 1) / kCompactChunk;
  parallel_tasks(chunks, kCompactChunk * k, [&](std::int64_t t) {
    const std::int64_t r0 = t * kCompactChunk, r1 = std::min(m, r0 + kCompactChunk);
    const T* rows = a + r0 * lda;
    std::int64_t ld = lda;
    if (trans_a) {
      T* tr = scratch<T>(2, (r1 - r0) * k);
      transpose(a + r0, lda, k, r1 - r0, tr, k);
      rows = tr;
      ld = k;
    }
    for (std::int64_t r = r0; r < r1; ++r) count[r] = compact_row(rows + (r - r0) * ld, k, idx + r * k, val + r * k);
  });
  std::int64_t total = 0;
  for (std::int64_t r = 0; r < m; ++r) total += count[r];
  return total;
}

// Rows [r0, r1) (at most kRowChunk) of C's column block at c (row stride ldc), NV vectors
// wide, from the block of op(B) at b (row stride ldb): per row one accumulator per vector.
// op(B) is taken kDepthChunk rows at a time, so that the rows the nonzeros pick stay in L1
// for all rows of C; the sums in between wait in part (exactly: a chain stored and reloaded
// is the same chain).
template <class T, int NV>
void row_pass(std::int64_t r0, std::int64_t r1, std::int64_t k, const std::int32_t* idx, const T* val,
              const std::int64_t* count, const T* b, std::int64_t ldb, T* part, T* c, std::int64_t ldc, bool add) {
  using V = typename Simd<T>::V;
  constexpr int W = sizeof(V) / sizeof(T);
  std::int64_t next[kRowChunk];  // per row: its first nonzero not yet taken
  for (std::int64_t r = r0; r < r1; ++r) next[r - r0] = 0;
  for (std::int64_t d0 = 0; d0 < k; d0 += kDepthChunk) {
    const std::int32_t d1 = static_cast<std::int32_t>(std::min(k, d0 + kDepthChunk));
    for (std::int64_t r = r0; r < r1; ++r) {
      T* pr = part + (r - r0) * NV * W;
      V acc[NV];
      for (int v = 0; v < NV; ++v) acc[v] = d0 == 0 ? V{} : vload<V>(pr + v * W);
      const std::int32_t* ix = idx + r * k;
      const T* vv = val + r * k;
      std::int64_t e = next[r - r0];
      for (const std::int64_t n = count[r]; e < n && ix[e] < d1; ++e) {
        const V s = vsplat<V>(vv[e]);
        const T* br = b + ix[e] * ldb;
        for (int v = 0; v < NV; ++v) acc[v] = vfma(s, vload<V>(br + v * W), acc[v]);
      }
      next[r - r0] = e;
      for (int v = 0; v < NV; ++v) vstore(pr + v * W, acc[v]);
    }
  }
  for (std::int64_t r = r0; r < r1; ++r) {
    T* cr = c + r * ldc;
    const T* pr = part + (r - r0) * NV * W;
    for (int v = 0; v < NV; ++v) {
      V o = vload<V>(pr + v * W);
      if (add) o += vload<V>(cr + v * W);
      vstore(cr + v * W, o);
    }
  }
}

// As row_pass for the block's columns [j0, j1) left over after its whole vectors, one at a time.
template <class T>
void row_pass_scalar(std::int64_t r0, std::int64_t r1, std::int64_t j0, std::int64_t j1, std::int64_t k,
                     const std::int32_t* idx, const T* val, const std::int64_t* count, const T* b, std::int64_t ldb,
                     T* c, std::int64_t ldc, bool add) {
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int32_t* ix = idx + r * k;
    const T* vv = val + r * k;
    for (std::int64_t j = j0; j < j1; ++j) {
      T acc = T(0);
      for (std::int64_t e = 0, n = count[r]; e < n; ++e) acc = sfma(vv[e], b[ix[e] * ldb + j], acc);
      c[r * ldc + j] = add ? c[r * ldc + j] + acc : acc;
    }
  }
}

template <class T, int NV = kBlockVectors>
void row_pass_n(int nv, std::int64_t r0, std::int64_t r1, std::int64_t k, const std::int32_t* idx, const T* val,
                const std::int64_t* count, const T* b, std::int64_t ldb, T* part, T* c, std::int64_t ldc, bool add) {
  if constexpr (NV > 0) {
    if (nv == NV) return row_pass<T, NV>(r0, r1, k, idx, val, count, b, ldb, part, c, ldc, add);
    row_pass_n<T, NV - 1>(nv, r0, r1, k, idx, val, count, b, ldb, part, c, ldc, add);
  }
}

template <class T>
bool sparse_product(const T* a, std::int64_t lda, bool trans_a, const T* b, std::int64_t ldb, bool trans_b, T* c,
                    std::int64_t m, std::int64_t n, std::int64_t k, bool add) {
  if (m * n * k < kMinWork || k > kMaxDepth) return false;
  // A strided sample of a's entries is a sample of op(A)'s, transposed or not.
  if (probe_density(a, m * k) > 1.25 * kMaxDensity) return false;
  // The lists live in this thread's buffers; the tasks get pointers, not the thread_local names.
  thread_local std::vector<std::int32_t> idx_buffer;
  thread_local std::vector<T> val_buffer;
  thread_local std::vector<std::int64_t> count_buffer;
  std::int32_t* const ix = fit(idx_buffer, m * k);
  T* const iv = fit(val_buffer, m * k);
  std::int64_t* const cn = fit(count_buffer, m);
  const std::int64_t nonzero = compact(a, lda, trans_a, m, k, ix, iv, cn);
  if (static_cast<double>(nonzero) > kMaxDensity * static_cast<double>(m * k)) return false;
  using V = typename Simd<T>::V;
  constexpr std::int64_t W = sizeof(V) / sizeof(T);
  constexpr std::int64_t block = kBlockVectors * W;
  const std::int64_t col_blocks = (n + block - 1) / block;
  // A task that packs its block of op(B) takes more rows, so that packing is repaid.
  const std::int64_t task_rows = trans_b ? kPackedTaskRows : kRowChunk;
  const std::int64_t row_chunks = (m + task_rows - 1) / task_rows;
  const std::int64_t per_task = std::max<std::int64_t>(1, nonzero / row_chunks) * block;
  // Task: a block of C's columns x task_rows of its rows, kRowChunk rows at a time
  // (their partial sums and a depth chunk of the block share L1; the block stays in L2). With
  // op(B) = B^T the block of op(B) is packed first (B's rows are its columns), else read in
  // place.
  parallel_tasks(col_blocks * row_chunks, per_task, [=](std::int64_t t) {
    const std::int64_t cb = t / row_chunks, rc = t % row_chunks;
    const std::int64_t rows0 = rc * task_rows, rows1 = std::min(m, rows0 + task_rows);
    const std::int64_t c0 = cb * block, cols = std::min(n, c0 + block) - c0;
    const T* bb = b + c0;
    std::int64_t ldbb = ldb;
    if (trans_b) {
      T* packed = scratch<T>(0, k * block);
      transpose(b + c0 * ldb, ldb, cols, k, packed, block);
      bb = packed;
      ldbb = block;
    }
    const int nv = static_cast<int>(cols / W);
    T* part = scratch<T>(1, kRowChunk * block);
    for (std::int64_t r0 = rows0; r0 < rows1; r0 += kRowChunk) {
      const std::int64_t r1 = std::min(rows1, r0 + kRowChunk);
      if (nv > 0) row_pass_n<T>(nv, r0, r1, k, ix, iv, cn, bb, ldbb, part, c + c0, n, add);
      if (nv * W < cols) row_pass_scalar<T>(r0, r1, nv * W, cols, k, ix, iv, cn, bb, ldbb, c + c0, n, add);
    }
  });
  return true;
}

}  // namespace

bool sparse_gemm(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, bool accumulate) {
  const std::int64_t m = c.shape()[0], n = c.shape()[1];
  const std::int64_t k = trans_a ? a.shape()[0] : a.shape()[1];
  bool done = false;
  detail::dispatch_float(c.dtype(), [&](auto tag) {
    using T = decltype(tag);
    done = sparse_product(a.data_as<T>(), a.shape()[1], trans_a, b.data_as<T>(), b.shape()[1], trans_b,
                          c.data_as<T>(), m, n, k, accumulate);
  });
  return done;
}

}  // namespace seisoku::cpu
