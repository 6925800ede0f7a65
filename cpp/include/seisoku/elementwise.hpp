#pragma once
// Elementwise ops. Every op writes into a caller-provided output of matching shape, dtype
// and device; inputs may alias the output. Arithmetic: float32, float64.
#include "seisoku/tensor.hpp"

namespace seisoku {

SEISOKU_API void add(const Tensor& a, const Tensor& b, const Tensor& out);      // out = a + b
SEISOKU_API void mul(const Tensor& a, const Tensor& b, const Tensor& out);      // out = a * b
SEISOKU_API void axpy(double alpha, const Tensor& x, const Tensor& y);          // y += alpha * x
SEISOKU_API void scale(double alpha, const Tensor& x, const Tensor& out);       // out = alpha * x
SEISOKU_API void axpy_sign(double alpha, const Tensor& x, const Tensor& y);     // y += alpha * sign(x)
SEISOKU_API void fill(const Tensor& out, double value);                         // any dtype
// dst = src converted to dst's dtype (any pair of dtypes; floats to ints truncate toward
// zero and saturate, NaN becomes 0; to float16/bfloat16 rounds to nearest even). Across
// devices only with equal dtypes.
SEISOKU_API void copy(const Tensor& src, const Tensor& dst);

}  // namespace seisoku
