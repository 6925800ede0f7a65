#pragma once
// Reductions over float32 / float64 tensors. Results are written to `out` (same dtype as x,
// one element, or one per row for the row_ variants). The summation order is fixed
// (blocks of 8192 elements, partials added in order), so results do not depend on the
// number of threads. Accumulation is in float64.
#include "seisoku/tensor.hpp"

namespace seisoku {

SEISOKU_API void sum(const Tensor& x, const Tensor& out);
SEISOKU_API void mean(const Tensor& x, const Tensor& out);  // empty x: invalid_argument
SEISOKU_API void max(const Tensor& x, const Tensor& out);   // empty x: invalid_argument; NaN propagates
// ord: 0 (count of non-zeros), 1, 2 or infinity.
SEISOKU_API void norm(const Tensor& x, double ord, const Tensor& out);
// x seen as rows = shape[0], cols = numel / rows; out has `rows` elements.
SEISOKU_API void row_norm(const Tensor& x, double ord, const Tensor& out);

// x (N, F): out (F,) (+)= sum over rows, rows added in order (the gradient of a bias).
SEISOKU_API void column_sum(const Tensor& x, const Tensor& out, bool accumulate);

}  // namespace seisoku
