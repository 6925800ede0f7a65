// CPU products whose left operand is mostly zeros: C (+)= op(A) op(B) over the nonzero
// entries of op(A) only. ReLU and dropout make a layer's outputs, and the gradients behind
// them, mostly zeros (with ReLU and dropout 0.5 about three quarters), so the Linear layers
// multiply through here when op(A) is sparse enough and through the dense GEMM otherwise.
//
// Decision: op(A)'s nonzeros are counted first: all of them, or where that would cost over
// 1/kCountShare of the product, whole rows of the stored operand at a stride coprime to
// their count (so every column is counted, and no pattern of zero columns or short period
// of empty rows lines up with the sample). The product comes here only where a cost model
// (pays()) puts it under kMaxCost of the dense GEMM's time: up to about 40% nonzeros for the
// products of a 800 -> 800 Linear at batch 128, less for narrow outputs. A product that
// comes here is never handed back, so no compaction is wasted.
//
// op(A) is compacted, row by row, into its nonzero values and their column indices in
// ascending order (a row's list starts at row * k; float rows 8 values at a time by AVX2
// left-packing; with op(A) = A^T, chunks of A's columns are transposed into rows first).
// C's columns are cut into blocks of at most kBlockVectors vectors, of equal width (so that
// tasks cost alike). A task takes one block and a range of C's rows; with op(B) = B^T (or a
// row stride of B that would crowd a few cache sets) it first packs its block of op(B) into
// one run of memory, else reads it in place. Then, kRowChunk rows at a time, op(B) is taken
// a depth chunk (about kChunkBytes of the block, so that it stays in L1) at a time, and per
// row the accumulators run one fused multiply-add per nonzero of the chunk, in ascending
// column order, over the matching rows of op(B); between chunks the sums wait in a small
// buffer (a chain stored and reloaded is the same chain), and the last chunk writes C. Every
// element of C is one such chain, whatever the blocks, tasks and other rows, so results are
// the same bits for any thread count and a row of C does not depend on op(A)'s other rows.
//
// Each nonzero costs one load of op(B) per multiply-add (a dense product reuses each load
// across a tile of rows), so this pays below about half nonzeros: at 25% it takes 0.6-0.7
// of the dense GEMM's time here (2-core AMD EPYC, AVX-512 and AVX2 builds), at 40% 0.8-0.9.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "kernels/core.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace seisoku::cpu {
namespace {

// The cost model of pays(), in units of the dense GEMM's time; fitted on AVX2 and AVX-512
// builds (2-core AMD EPYC, OpenBLAS's Haswell and SkylakeX kernels) over products of 16 to
// 1024 columns, with a margin.
constexpr double kSlope = 1.6;          // per unit of nonzero share, for long blocks
constexpr double kPassVectors = 1.0;    // the pass over a nonzero costs about this many vectors more
constexpr double kBaseCost = 0.1;       // scheduling, partial sums, the last writes of C
constexpr double kCompactCost = 16.0;   // count and compaction: over the columns of C
constexpr double kTransposeCost = 5.0;  // packing op(B) = B^T: over the rows of C
constexpr double kCopyCost = 1.0;       // packing op(B) = B: over the rows of C
constexpr double kMaxCost = 0.9;        // taken when the model says at most this
constexpr std::int64_t kChunkBytes = 24 << 10;  // bytes of a block of op(B) per depth chunk
constexpr std::int64_t kRowChunk = 32;   // rows of C per pass over op(B)
constexpr int kBlockVectors = 8;         // most vectors of C per row pass
constexpr std::int64_t kPackBytes = std::int64_t{4} << 20;  // most bytes of a packed block of op(B)
constexpr std::int64_t kMinWork = std::int64_t{1} << 20;   // dense multiply-adds below which it does not
constexpr std::int64_t kCountShare = 256;                  // the count reads at most 1/this of the work
constexpr std::int64_t kCompactChunk = 32;                 // rows of op(A) per compaction task
constexpr std::int64_t kMaxDepth = std::int64_t{1} << 18;  // longer k: the per-thread lists would be large

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

// A thread's scratch (slot 0: partial sums; 1: rows of op(A) to compact; 2: a packed block of
// op(B)).
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

// Rows [r0, r1) (a chunk of at most kCompactChunk) of op(A) (m x k) into idx / val from
// r * k on, count[r] entries. With op(A) = a^T, the chunk (a's columns) is transposed into
// scratch first.
template <class T>
void compact_chunk(const T* a, std::int64_t lda, bool trans_a, std::int64_t r0, std::int64_t r1, std::int64_t k,
                   std::int32_t* idx, T* val, std::int64_t* count) {
  const T* rows = a + r0 * lda;
  std::int64_t ld = lda;
  if (trans_a) {
    T* tr = scratch<T>(1, (r1 - r0) * k);
    transpose(a + r0, lda, k, r1 - r0, tr, k);
    rows = tr;
    ld = k;
  }
  for (std::int64_t r = r0; r < r1; ++r) count[r] = compact_row(rows + (r - r0) * ld, k, idx + r * k, val + r * k);
}

// Nonzero entries among rows [r0, r1) of a (row length cols, contiguous). NaN counts as
// nonzero and -0 as zero, as in the compaction.
template <class T>
std::int64_t count_rows(const T* a, std::int64_t cols, std::int64_t r0, std::int64_t r1) {
  const T* p = a + r0 * cols;
  const std::int64_t end = (r1 - r0) * cols;
  std::int64_t n = 0;
  for (std::int64_t i0 = 0; i0 < end; i0 += 4096) {  // 32-bit partial counts vectorize wider
    std::int32_t part = 0;
    for (std::int64_t i = i0, e = std::min(end, i0 + 4096); i < e; ++i) part += p[i] != T(0);
    n += part;
  }
  return n;
}

// Nonzero share of a (rows x cols, contiguous): over all of it when that reads at most
// work / kCountShare entries, else over as many whole rows (so every column is counted),
// taken with a stride coprime to the row count near 0.618 of it, so that they spread over
// a and no short period of dense and empty rows lines up with them.
template <class T>
double nonzero_share(const T* a, std::int64_t rows, std::int64_t cols, std::int64_t work) {
  const std::int64_t taken = std::clamp<std::int64_t>(work / kCountShare / cols, 1, rows);
  std::int64_t nonzero = 0;
  if (taken == rows) {
    constexpr std::int64_t kRowsPerTask = 64;
    const std::int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
    if (tasks == 1 || rows * cols < (std::int64_t{1} << 20)) {
      nonzero = count_rows(a, cols, 0, rows);
    } else {
      std::vector<std::int64_t> part(static_cast<std::size_t>(tasks));
      parallel_tasks(tasks, kRowsPerTask * cols, [&](std::int64_t t) {
        part[t] = count_rows(a, cols, t * kRowsPerTask, std::min(rows, (t + 1) * kRowsPerTask));
      });
      for (std::int64_t p : part) nonzero += p;
    }
  } else {
    std::int64_t stride = std::max<std::int64_t>(1, rows * 618 / 1000);
    while (std::gcd(stride, rows) != 1) ++stride;
    for (std::int64_t i = 0, r = 0; i < taken; ++i, r = (r + stride) % rows) nonzero += count_rows(a, cols, r, r + 1);
  }
  return static_cast<double>(nonzero) / static_cast<double>(taken * cols);
}

// C's columns [0, n) cut into `count` blocks of whole vectors (W columns each), of equal
// width but for one vector; the columns past the last whole vector join the last block.
struct Blocks {
  std::int64_t vectors;  // whole vectors of C's row
  std::int64_t count;    // blocks
  std::int64_t width;    // most columns of a block (the packed buffer's row stride)
  std::int64_t first(std::int64_t j, std::int64_t w) const { return j * vectors / count * w; }
};

// Blocks of at most kBlockVectors vectors; at least `least` of them where C has that many
// vectors.
template <class T>
Blocks column_blocks(std::int64_t n, std::int64_t least) {
  constexpr std::int64_t W = sizeof(typename Simd<T>::V) / sizeof(T);
  const std::int64_t vectors = n / W;
  std::int64_t count = std::max<std::int64_t>(1, (vectors + kBlockVectors - 1) / kBlockVectors);
  count = std::min(vectors, (count + least - 1) / least * least);
  const std::int64_t widest = (vectors + count - 1) / count;
  return {vectors, count, widest * W + (n - vectors * W)};
}

// Whether this beats the dense GEMM at nonzero share `share`. Its cost, in units of the
// dense product's, is about kSlope * share (each nonzero reads a vector of op(B) per
// multiply-add, where the GEMM reuses each load across a tile of rows; a narrow block
// spends more per vector on the pass over its nonzeros), plus the count and the compaction
// (per entry of op(A), so per column of C) and the packing (per entry of op(B), so per row
// of C).
inline bool pays(double share, std::int64_t m, std::int64_t n, const Blocks& blocks, bool trans_b) {
  const double vectors = static_cast<double>(blocks.vectors) / static_cast<double>(blocks.count);
  const double pack = trans_b ? kTransposeCost : kCopyCost;
  const double cost = kSlope * (vectors + kPassVectors) / vectors * share + kBaseCost +
                      kCompactCost / static_cast<double>(n) + pack / static_cast<double>(m);
  return cost <= kMaxCost;
}

// Rows [r0, r1) (at most kRowChunk) of C's column block at c (row stride ldc), NV vectors
// wide, from the block of op(B) at b (row stride ldb). op(B) is taken `depth` rows at a time,
// so that the rows the nonzeros pick stay in L1 for all rows of the pass; per row, one
// accumulator per vector. The sums of a row wait in part between chunks; the last chunk
// writes C.
template <class T, int NV>
void row_pass(std::int64_t r0, std::int64_t r1, std::int64_t k, std::int64_t depth, const std::int32_t* idx,
              const T* val, const std::int64_t* count, const T* b, std::int64_t ldb, T* part, T* c,
              std::int64_t ldc, bool add) {
  using V = typename Simd<T>::V;
  constexpr int W = sizeof(V) / sizeof(T);
  std::int64_t next[kRowChunk];  // per row: its first nonzero not yet taken
  for (std::int64_t r = r0; r < r1; ++r) next[r - r0] = 0;
  for (std::int64_t d0 = 0; d0 < k; d0 += depth) {
    const bool first = d0 == 0, last = d0 + depth >= k;
    const std::int32_t d1 = static_cast<std::int32_t>(std::min(k, d0 + depth));
    for (std::int64_t r = r0; r < r1; ++r) {
      T* pr = part + (r - r0) * NV * W;
      V acc[NV];
      for (int v = 0; v < NV; ++v) acc[v] = first ? V{} : vload<V>(pr + v * W);
      const std::int32_t* ix = idx + r * k;
      const T* vv = val + r * k;
      std::int64_t e = next[r - r0];
      const std::int64_t n = count[r];
      if (last) {
        for (; e < n; ++e) {
          const V s = vsplat<V>(vv[e]);
          const T* br = b + ix[e] * ldb;
          for (int v = 0; v < NV; ++v) acc[v] = vfma(s, vload<V>(br + v * W), acc[v]);
        }
        T* cr = c + r * ldc;
        for (int v = 0; v < NV; ++v) vstore(cr + v * W, add ? acc[v] + vload<V>(cr + v * W) : acc[v]);
      } else {
        for (; e < n && ix[e] < d1; ++e) {
          const V s = vsplat<V>(vv[e]);
          const T* br = b + ix[e] * ldb;
          for (int v = 0; v < NV; ++v) acc[v] = vfma(s, vload<V>(br + v * W), acc[v]);
        }
        next[r - r0] = e;
        for (int v = 0; v < NV; ++v) vstore(pr + v * W, acc[v]);
      }
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
void row_pass_n(int nv, std::int64_t r0, std::int64_t r1, std::int64_t k, std::int64_t depth, const std::int32_t* idx,
                const T* val, const std::int64_t* count, const T* b, std::int64_t ldb, T* part, T* c,
                std::int64_t ldc, bool add) {
  if constexpr (NV > 0) {
    if (nv == NV) return row_pass<T, NV>(r0, r1, k, depth, idx, val, count, b, ldb, part, c, ldc, add);
    row_pass_n<T, NV - 1>(nv, r0, r1, k, depth, idx, val, count, b, ldb, part, c, ldc, add);
  }
}

template <class T>
bool sparse_product(const T* a, std::int64_t lda, bool trans_a, const T* b, std::int64_t ldb, bool trans_b, T* c,
                    std::int64_t m, std::int64_t n, std::int64_t k, bool add) {
  using V = typename Simd<T>::V;
  constexpr std::int64_t W = sizeof(V) / sizeof(T);
  if (m * n * k < kMinWork || k > kMaxDepth || n < W) return false;
  // With op(B) = B^T, or a row stride of B that would put a depth chunk's rows in few cache
  // sets (a multiple of 512 bytes), a task packs its block of op(B) first, so that a chunk is
  // one run of memory. Whether the product comes here depends on the shapes and the nonzero
  // count only, never on the thread count (the two paths' results differ in their last bits).
  const Blocks widest = column_blocks<T>(n, 1);
  const bool pack = k * widest.width * std::int64_t{sizeof(T)} <= kPackBytes &&
                    (trans_b || ldb * std::int64_t{sizeof(T)} % 512 == 0);
  if (trans_b && !pack) return false;  // op(B)'s columns are B's rows: no block to read in place
  // op(A)'s nonzero share is a's, transposed or not (not counted where no share would pay).
  if (!pays(0.0, m, n, widest, trans_b)) return false;
  const double share = nonzero_share(a, trans_a ? k : m, lda, m * n * k);
  if (!pays(share, m, n, widest, trans_b)) return false;
  // The lists live in this thread's buffers; the tasks get pointers, not the thread_local names.
  thread_local std::vector<std::int32_t> idx_buffer;
  thread_local std::vector<T> val_buffer;
  thread_local std::vector<std::int64_t> count_buffer;
  std::int32_t* const ix = fit(idx_buffer, m * k);
  T* const iv = fit(val_buffer, m * k);
  std::int64_t* const cn = fit(count_buffer, m);
  // Task: one block of C's columns x a range of its rows. A transposed block costs more than
  // a task gains from sharing it, so then each block is one task, and there are as many
  // blocks as it takes to share them out evenly; else the ranges are as long as that allows
  // (the block stays in the task's cache). The split never changes a result.
  const std::int64_t threads = max_threads();
  const Blocks blocks = trans_b ? column_blocks<T>(n, threads) : widest;
  const std::int64_t depth = std::max<std::int64_t>(16, kChunkBytes / (blocks.width * std::int64_t{sizeof(T)}));
  const std::int64_t row_chunks = (m + kRowChunk - 1) / kRowChunk;
  std::int64_t ranges = 1;
  while (ranges < row_chunks && (blocks.count * ranges) % threads != 0 && (!trans_b || blocks.count * ranges < threads))
    ++ranges;
  const std::int64_t range_rows = (row_chunks + ranges - 1) / ranges * kRowChunk;
  ranges = (m + range_rows - 1) / range_rows;
  const auto compaction = [=](std::int64_t t) {
    const std::int64_t r0 = t * kCompactChunk;
    compact_chunk(a, lda, trans_a, r0, std::min(m, r0 + kCompactChunk), k, ix, iv, cn);
  };
  const auto task = [=](std::int64_t t) {
    const std::int64_t j = t / ranges, rows0 = t % ranges * range_rows, rows1 = std::min(m, rows0 + range_rows);
    const std::int64_t c0 = blocks.first(j, W), c1 = j + 1 == blocks.count ? n : blocks.first(j + 1, W);
    const T* bb = b + c0;
    std::int64_t ldbb = ldb;
    if (pack) {
      T* packed = scratch<T>(2, k * blocks.width);
      if (trans_b) {
        transpose(b + c0 * ldb, ldb, c1 - c0, k, packed, blocks.width);
      } else {
        for (std::int64_t d = 0; d < k; ++d) std::copy(b + d * ldb + c0, b + d * ldb + c1, packed + d * blocks.width);
      }
      bb = packed;
      ldbb = blocks.width;
    }
    const int nv = static_cast<int>((c1 - c0) / W);
    T* part = scratch<T>(0, kRowChunk * nv * W);
    for (std::int64_t r0 = rows0; r0 < rows1; r0 += kRowChunk) {
      const std::int64_t r1 = std::min(rows1, r0 + kRowChunk);
      if (nv > 0) row_pass_n<T>(nv, r0, r1, k, depth, ix, iv, cn, bb, ldbb, part, c + c0, n, add);
      if (c0 + nv * W < c1) row_pass_scalar<T>(r0, r1, nv * W, c1 - c0, k, ix, iv, cn, bb, ldbb, c + c0, n, add);
    }
  };
  two_phases((m + kCompactChunk - 1) / kCompactChunk, compaction, blocks.count * ranges, task);
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
