// CPU GEMM through OpenBLAS (scipy-openblas32, symbols prefixed scipy_).
//
// OpenBLAS itself runs single-threaded: C is cut into a grid of tiles that depends on the
// shape only, each tile is one single-threaded sgemm/dgemm call, and seisoku's OpenMP threads
// share out the tiles. Every element of C is then computed by the same call on the same
// operands whatever the thread count, so results never depend on it (OpenBLAS's own threading
// changes how a product is split and summed with the thread count, and the bits of an element
// depend on the size of the call that computes it), and OpenBLAS keeps no thread pool of its
// own to compete with OpenMP's for the cores.
//
// Each call packs its rows of op(A) and its columns of op(B) again, so a tile is kept at
// kTileWork multiply-adds or more: a 128 x 800 x 800 product (a Linear layer's at batch 128)
// takes 8 tiles; cut into 16, it took 10% more time on one thread and 13% more on two
// (2-core AMD EPYC).
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <mutex>

#include "kernels/core.hpp"
#include "parallel.hpp"
#include "seisoku/elementwise.hpp"

namespace seisoku::cpu {
namespace {

// Multiply-adds per tile at which a product is cut further, and the most tiles of one product.
constexpr std::int64_t kTileWork = std::int64_t{1} << 23;
constexpr int kMaxTiles = 16;
constexpr std::int64_t kMinTileSide = 32;

// Rows and columns of C cut into tm x tn tiles: the larger side (per tile) is halved while the
// tile still has kTileWork multiply-adds and a side of kMinTileSide.
void tile_grid(std::int64_t m, std::int64_t n, std::int64_t k, int* tm, int* tn) {
  *tm = 1;
  *tn = 1;
  const std::int64_t work = m * n * k;
  while (*tm * *tn < kMaxTiles && work / (2 * *tm * *tn) >= kTileWork) {
    const std::int64_t rows = m / *tm, cols = n / *tn;
    if (rows >= cols && rows / 2 >= kMinTileSide) *tm *= 2;
    else if (cols / 2 >= kMinTileSide) *tn *= 2;
    else if (rows / 2 >= kMinTileSide) *tm *= 2;
    else break;
  }
}

// Start of piece i of `count` over `total` elements, on multiples of 8.
std::int64_t cut(std::int64_t total, int count, int i) {
  if (i >= count) return total;
  return std::min(total, total * i / count / 8 * 8);
}

void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { scipy_openblas_set_num_threads(1); });
}

// C[r0, c0:c0+cols] = alpha * op(A)[r0, :] op(B)[:, c0:c0+cols] + beta * C[...] as one gemv:
// sgemm called with one row packs the whole of op(B) first, which for a large weight (4096 x
// 4096, 64 MB) took 4-5x the time of streaming it once through gemv (2-core AMD EPYC).
void gemv_row(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, double alpha,
              double beta, std::int64_t a_off, std::int64_t b_off, std::int64_t c_off, int cols, std::int64_t k,
              std::int64_t lda, std::int64_t ldb) {
  // op(B)[:, c0..] is B[c0.., :] rows (trans_b: B is n x k) or B[:, c0..] columns (B is k x n).
  const auto order = trans_b ? CblasNoTrans : CblasTrans;
  const int m = trans_b ? cols : static_cast<int>(k), n = trans_b ? static_cast<int>(k) : cols;
  const int incx = trans_a ? static_cast<int>(lda) : 1;  // op(A)'s row r0: a column of A when transposed
  if (c.dtype() == DType::float32) {
    // beta == 0 ignores what C held (NaN included), as gemm does: clear it first.
    if (beta == 0.0) std::fill_n(c.data_as<float>() + c_off, cols, 0.0f);
    scipy_cblas_sgemv(CblasRowMajor, order, m, n, static_cast<float>(alpha), b.data_as<float>() + b_off,
                      static_cast<int>(ldb), a.data_as<float>() + a_off, incx, static_cast<float>(beta),
                      c.data_as<float>() + c_off, 1);
  } else {
    if (beta == 0.0) std::fill_n(c.data_as<double>() + c_off, cols, 0.0);
    scipy_cblas_dgemv(CblasRowMajor, order, m, n, alpha, b.data_as<double>() + b_off, static_cast<int>(ldb),
                      a.data_as<double>() + a_off, incx, beta, c.data_as<double>() + c_off, 1);
  }
}

}  // namespace

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, double alpha, double beta) {
  const std::int64_t m = c.shape()[0];
  const std::int64_t n = c.shape()[1];
  const std::int64_t k = trans_a ? a.shape()[0] : a.shape()[1];
  if (m == 0 || n == 0) return;
  if (k == 0) {  // nothing to multiply: c = beta * c (beta == 0 clears, ignoring NaN)
    if (beta == 0.0) cpu::fill(c, 0.0); else cpu::scale(beta, c, c);
    return;
  }
  blas_single_threaded();
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  const std::int64_t lda = a.shape()[1];
  const std::int64_t ldb = b.shape()[1];
  int tm, tn;
  tile_grid(m, n, k, &tm, &tn);
  // Tile (i, j): rows [r0, r1) of C from rows r0.. of op(A), columns [c0, c1) from columns c0.. of op(B).
  auto tile = [&](std::int64_t t) {
    const int i = static_cast<int>(t / tn), j = static_cast<int>(t % tn);
    const std::int64_t r0 = cut(m, tm, i), r1 = cut(m, tm, i + 1);
    const std::int64_t c0 = cut(n, tn, j), c1 = cut(n, tn, j + 1);
    if (r0 == r1 || c0 == c1) return;
    const std::int64_t a_off = trans_a ? r0 : r0 * lda;
    const std::int64_t b_off = trans_b ? c0 * ldb : c0;
    const std::int64_t c_off = r0 * n + c0;
    const int rows = static_cast<int>(r1 - r0), cols = static_cast<int>(c1 - c0);
    if (rows == 1) {  // one row of C (a single sample): a matrix-vector product over op(B)
      gemv_row(a, b, c, trans_a, trans_b, alpha, beta, a_off, b_off, c_off, cols, k, lda, ldb);
      return;
    }
    if (c.dtype() == DType::float32) {
      scipy_cblas_sgemm(CblasRowMajor, ta, tb, rows, cols, static_cast<int>(k), static_cast<float>(alpha),
                        a.data_as<float>() + a_off, static_cast<int>(lda), b.data_as<float>() + b_off,
                        static_cast<int>(ldb), static_cast<float>(beta), c.data_as<float>() + c_off,
                        static_cast<int>(n));
    } else {
      scipy_cblas_dgemm(CblasRowMajor, ta, tb, rows, cols, static_cast<int>(k), alpha, a.data_as<double>() + a_off,
                        static_cast<int>(lda), b.data_as<double>() + b_off, static_cast<int>(ldb), beta,
                        c.data_as<double>() + c_off, static_cast<int>(n));
    }
  };
  const std::int64_t tiles = std::int64_t{tm} * tn;
  if (tiles == 1) {
    tile(0);
    return;
  }
  parallel_tasks(tiles, kParallelGrain, tile);
}

}  // namespace seisoku::cpu
