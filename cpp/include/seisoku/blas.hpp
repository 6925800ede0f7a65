#pragma once
// Matrix products through a BLAS: OpenBLAS (scipy-openblas32) on CPU, cuBLAS on CUDA.
#include "seisoku/tensor.hpp"

namespace seisoku {

// c = alpha * op(a) @ op(b) + beta * c, op(x) = x or x^T; 2-D row-major float32/float64.
// beta == 0 overwrites c (its old contents, even NaN, are ignored).
SEISOKU_API void gemm(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a = false,
                      bool trans_b = false, double alpha = 1.0, double beta = 0.0);

}  // namespace seisoku
