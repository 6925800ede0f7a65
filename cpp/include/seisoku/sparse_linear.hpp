#pragma once
// Fully connected products with a compressed sparse weight: y = epilogue(x W^T) where W
// (rows = out_features, cols = in_features) is stored as its nonzero values in compressed
// sparse rows (CSR). A pruned layer keeps 5-10% of its weights; its product then reads and
// multiplies those only. The pattern also holds W^T's rows (the same nonzeros by column),
// so the input gradient x' = grad W is the same kind of product, with no scatter.
#include <cstdint>

#include "seisoku/linear.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku {

// Where the nonzeros of a rows x cols matrix sit. Row r's nonzeros are the values
// [row_ptr[r], row_ptr[r + 1]), in columns col_idx[...] ascending. The transpose: column c's
// nonzeros are at rows t_row_idx[t_ptr[c] .. t_ptr[c + 1]) ascending, their values at
// t_pos[...] (positions in CSR order). Index tensors live on the device of the values.
struct SparsePattern {
  std::int64_t rows = 0, cols = 0;
  Tensor row_ptr;    // int64 (rows + 1)
  Tensor col_idx;    // int32 (nnz)
  Tensor t_ptr;      // int64 (cols + 1)
  Tensor t_row_idx;  // int32 (nnz)
  Tensor t_pos;      // int32 (nnz)
  std::int64_t nnz() const { return col_idx.defined() ? col_idx.numel() : 0; }
  Device device() const { return row_ptr.device(); }
  int device_index() const { return row_ptr.device_index(); }
  // The same pattern on another device (a copy; itself when already there).
  SparsePattern to(Device device, int device_index = 0) const;
};

// The pattern of CSR arrays on the CPU (row_ptr int64 (rows + 1) from 0 to nnz, non-decreasing;
// col_idx int32 or int64 (nnz), ascending and in [0, cols) in each row), with its transpose;
// throws std::invalid_argument naming what is wrong. At most 2^31 - 1 nonzeros.
SEISOKU_API SparsePattern sparse_pattern(const Tensor& row_ptr, const Tensor& col_idx, std::int64_t rows,
                                         std::int64_t cols);
// The pattern and values (float, on the weight's device) of the nonzero entries of a float
// weight (rows, cols); a NaN or infinite entry throws, naming its position.
SEISOKU_API SparsePattern sparse_from_dense(const Tensor& weight, Tensor* values);
// out (rows, cols) = the dense matrix of pattern and values (zeros elsewhere).
SEISOKU_API void sparse_to_dense(const SparsePattern& w, const Tensor& values, const Tensor& out);

// out (N, rows) = epilogue(x (N, cols) @ W^T) with W given by pattern and values; bias (rows,)
// or an empty Tensor. Each output is one sum over its row's nonzeros in column order, so
// results are the same bits for any thread count.
SEISOKU_API void sparse_linear(const Tensor& x, const SparsePattern& w, const Tensor& values, const Tensor& bias,
                               const Tensor& out, const Epilogue& e = {});
// From grad_z (N, rows), the gradient before the epilogue: grad_x (N, cols) = grad_z @ W,
// grad_values (+)= (grad_z^T @ x) at the nonzeros only, grad_bias (+)= column sums of grad_z.
// Undefined outputs are skipped; accumulate adds into grad_values and grad_bias.
SEISOKU_API void sparse_linear_backward(const Tensor& grad_z, const Tensor& x, const SparsePattern& w,
                                        const Tensor& values, const Tensor& grad_x, const Tensor& grad_values,
                                        const Tensor& grad_bias, bool accumulate);

}  // namespace seisoku
