// CPU GEMM through OpenBLAS (scipy-openblas32, symbols prefixed scipy_).
#include <cblas.h>

#include "kernels.hpp"
#include "seisoku/elementwise.hpp"

namespace seisoku::cpu {

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, double alpha, double beta) {
  const int m = static_cast<int>(c.shape()[0]);
  const int n = static_cast<int>(c.shape()[1]);
  const int k = static_cast<int>(trans_a ? a.shape()[0] : a.shape()[1]);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // nothing to multiply: c = beta * c (beta == 0 clears, ignoring NaN)
    if (beta == 0.0) cpu::fill(c, 0.0); else cpu::scale(beta, c, c);
    return;
  }
  const auto ta = trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = trans_b ? CblasTrans : CblasNoTrans;
  const int lda = static_cast<int>(a.shape()[1]);
  const int ldb = static_cast<int>(b.shape()[1]);
  if (c.dtype() == DType::float32) {
    scipy_cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, static_cast<float>(alpha), a.data_as<float>(), lda,
                      b.data_as<float>(), ldb, static_cast<float>(beta), c.data_as<float>(), n);
  } else {
    scipy_cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a.data_as<double>(), lda, b.data_as<double>(), ldb, beta,
                      c.data_as<double>(), n);
  }
}

}  // namespace seisoku::cpu
