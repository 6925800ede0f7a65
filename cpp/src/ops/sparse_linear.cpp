// Front-ends of the sparse linear products: the CSR pattern built and checked once on the host
// (with its transpose), then per call the shapes, dtypes and devices of the tensors checked
// and the kernel dispatched. A dropout epilogue runs as the dense layer's fused epilogue pass
// over the product; bias and activation are fused into the product's own stores.
#include "seisoku/sparse_linear.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/check.hpp"
#include "core/dispatch.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "kernels/sparse_linear.hpp"
#include "seisoku/reduce.hpp"

namespace seisoku {
namespace {

constexpr std::int64_t kMaxNonzeros = std::numeric_limits<std::int32_t>::max();

std::string num(std::int64_t v) { return std::to_string(v); }

Tensor on_host(const Tensor& t) { return t.is_cuda() ? t.to(Device::cpu) : t; }

// Builds the transpose of a checked CSR pattern on the host (counting sort by column: rows
// come out ascending within each column).
SparsePattern with_transpose(Tensor row_ptr, Tensor col_idx, std::int64_t rows, std::int64_t cols) {
  const std::int64_t nnz = col_idx.numel();
  SparsePattern p;
  p.rows = rows;
  p.cols = cols;
  p.row_ptr = std::move(row_ptr);
  p.col_idx = std::move(col_idx);
  p.t_ptr = Tensor::zeros({cols + 1}, DType::int64);
  p.t_row_idx = Tensor::empty({nnz}, DType::int32);
  p.t_pos = Tensor::empty({nnz}, DType::int32);
  const std::int64_t* rp = p.row_ptr.data_as<std::int64_t>();
  const std::int32_t* ci = p.col_idx.data_as<std::int32_t>();
  std::int64_t* tp = p.t_ptr.data_as<std::int64_t>();
  std::int32_t* tr = p.t_row_idx.data_as<std::int32_t>();
  std::int32_t* ts = p.t_pos.data_as<std::int32_t>();
  for (std::int64_t e = 0; e < nnz; ++e) ++tp[ci[e] + 1];
  for (std::int64_t c = 0; c < cols; ++c) tp[c + 1] += tp[c];
  std::vector<std::int64_t> next(tp, tp + cols);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t e = rp[r]; e < rp[r + 1]; ++e) {
      const std::int64_t at = next[ci[e]]++;
      tr[at] = static_cast<std::int32_t>(r);
      ts[at] = static_cast<std::int32_t>(e);
    }
  return p;
}

void check_float_matrix(const char* op, const char* name, const Tensor& t) {
  detail::check_defined(op, name, t);
  if (t.dim() != 2) detail::fail(op, std::string(name) + " must be 2-D, got shape " + shape_str(t.shape()));
  detail::check_dtype(op, name, t, {DType::float32, DType::float64});
}

// The pattern and values the products are given: values 1-D of nnz, of x's dtype, and all of
// them on x's device.
void check_operand(const char* op, const Tensor& x, const SparsePattern& w, const Tensor& values) {
  if (!w.row_ptr.defined() || !w.col_idx.defined() || !w.t_ptr.defined() || !w.t_row_idx.defined() ||
      !w.t_pos.defined())
    detail::fail(op, "the sparse pattern is incomplete (build it with sparse_pattern or sparse_from_dense)");
  detail::check_defined(op, "values", values);
  if (values.dim() != 1 || values.numel() != w.nnz())
    detail::fail(op, "values must have shape (" + num(w.nnz()) + ",) (one per nonzero), got " +
                         shape_str(values.shape()));
  detail::check_same_dtype(op, "x", x, "values", values);
  detail::check_same_device(op, "x", x, "values", values);
  detail::check_same_device(op, "x", x, "the sparse pattern", w.row_ptr);
}

}  // namespace

SparsePattern SparsePattern::to(Device device, int device_index) const {
  if (row_ptr.device() == device && (device == Device::cpu || row_ptr.device_index() == device_index)) return *this;
  SparsePattern p = *this;
  for (Tensor* t : {&p.row_ptr, &p.col_idx, &p.t_ptr, &p.t_row_idx, &p.t_pos}) *t = t->to(device, device_index);
  return p;
}

SparsePattern sparse_pattern(const Tensor& row_ptr, const Tensor& col_idx, std::int64_t rows, std::int64_t cols) {
  const char* op = "sparse_pattern";
  if (rows < 1 || cols < 1) detail::fail(op, "rows and cols must be >= 1, got " + num(rows) + " and " + num(cols));
  if (cols > kMaxNonzeros || rows > kMaxNonzeros)
    detail::fail(op, "rows and cols must be below 2^31, got " + num(rows) + " and " + num(cols));
  detail::check_defined(op, "row_ptr", row_ptr);
  detail::check_defined(op, "col_idx", col_idx);
  if (row_ptr.is_cuda() || col_idx.is_cuda()) detail::fail(op, "row_ptr and col_idx must be on the CPU");
  detail::check_dtype(op, "row_ptr", row_ptr, {DType::int64, DType::int32});
  detail::check_dtype(op, "col_idx", col_idx, {DType::int32, DType::int64});
  if (row_ptr.dim() != 1 || row_ptr.numel() != rows + 1)
    detail::fail(op, "row_ptr must have shape (" + num(rows + 1) + ",) (rows + 1), got " + shape_str(row_ptr.shape()));
  if (col_idx.dim() != 1) detail::fail(op, "col_idx must be 1-D, got shape " + shape_str(col_idx.shape()));
  const std::int64_t nnz = col_idx.numel();
  if (nnz > kMaxNonzeros) detail::fail(op, "at most 2^31 - 1 nonzeros, got " + num(nnz));
  Tensor rp = Tensor::empty({rows + 1}, DType::int64);
  Tensor ci = Tensor::empty({nnz}, DType::int32);
  std::int64_t* r = rp.data_as<std::int64_t>();
  for (std::int64_t i = 0; i <= rows; ++i)
    r[i] = row_ptr.dtype() == DType::int64 ? row_ptr.data_as<std::int64_t>()[i] : row_ptr.data_as<std::int32_t>()[i];
  if (r[0] != 0 || r[rows] != nnz)
    detail::fail(op, "row_ptr must run from 0 to the number of nonzeros " + num(nnz) + ", got " + num(r[0]) +
                         " to " + num(r[rows]));
  for (std::int64_t i = 0; i < rows; ++i) {
    if (r[i + 1] < r[i])
      detail::fail(op, "row_ptr must be non-decreasing, got " + num(r[i]) + " then " + num(r[i + 1]) +
                           " at row " + num(i));
    for (std::int64_t e = r[i]; e < r[i + 1]; ++e) {
      const std::int64_t c =
          col_idx.dtype() == DType::int64 ? col_idx.data_as<std::int64_t>()[e] : col_idx.data_as<std::int32_t>()[e];
      if (c < 0 || c >= cols)
        detail::fail(op, "col_idx must be in [0, " + num(cols) + "), got " + num(c) + " in row " + num(i));
      if (e > r[i] && c <= ci.data_as<std::int32_t>()[e - 1])
        detail::fail(op, "col_idx must be strictly ascending within a row, got " +
                             num(ci.data_as<std::int32_t>()[e - 1]) + " then " + num(c) + " in row " + num(i));
      ci.data_as<std::int32_t>()[e] = static_cast<std::int32_t>(c);
    }
  }
  return with_transpose(std::move(rp), std::move(ci), rows, cols);
}

SparsePattern sparse_from_dense(const Tensor& weight, Tensor* values) {
  const char* op = "sparse_from_dense";
  check_float_matrix(op, "weight", weight);
  detail::check_nonempty(op, "weight", weight);
  const std::int64_t rows = weight.shape()[0], cols = weight.shape()[1];
  if (rows > kMaxNonzeros || cols > kMaxNonzeros)
    detail::fail(op, "weight must have fewer than 2^31 rows and columns, got shape " + shape_str(weight.shape()));
  const Tensor host = on_host(weight);
  Tensor rp = Tensor::empty({rows + 1}, DType::int64);
  std::vector<std::int32_t> cols_of;
  Tensor vals;
  detail::dispatch_float(weight.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* w = host.data_as<T>();
    std::int64_t* r = rp.data_as<std::int64_t>();
    std::vector<T> kept;
    r[0] = 0;
    for (std::int64_t i = 0; i < rows; ++i) {
      for (std::int64_t j = 0; j < cols; ++j) {
        const T v = w[i * cols + j];
        if (!std::isfinite(v))
          detail::fail(op, "weight must be finite, got " + std::to_string(static_cast<double>(v)) + " at (" +
                               num(i) + ", " + num(j) + ")");
        if (v != T(0)) {
          cols_of.push_back(static_cast<std::int32_t>(j));
          kept.push_back(v);
        }
      }
      r[i + 1] = static_cast<std::int64_t>(kept.size());
    }
    if (static_cast<std::int64_t>(kept.size()) > kMaxNonzeros) detail::fail(op, "at most 2^31 - 1 nonzeros");
    vals = Tensor::empty({static_cast<std::int64_t>(kept.size())}, weight.dtype());
    std::copy(kept.begin(), kept.end(), vals.data_as<T>());
  });
  Tensor ci = Tensor::empty({static_cast<std::int64_t>(cols_of.size())}, DType::int32);
  std::copy(cols_of.begin(), cols_of.end(), ci.data_as<std::int32_t>());
  SparsePattern p = with_transpose(std::move(rp), std::move(ci), rows, cols);
  if (values != nullptr) *values = weight.is_cuda() ? vals.to(Device::cuda, weight.device_index()) : vals;
  return p.to(weight.device(), weight.device_index());
}

void sparse_to_dense(const SparsePattern& w, const Tensor& values, const Tensor& out) {
  const char* op = "sparse_to_dense";
  check_float_matrix(op, "out", out);
  check_operand(op, out, w, values);
  detail::check_shape(op, "out", out, {w.rows, w.cols});
  const SparsePattern hp = w.to(Device::cpu);
  const Tensor hv = on_host(values);
  Tensor dense = out.is_cuda() ? Tensor::empty(out.shape(), out.dtype()) : out;
  detail::dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* d = dense.data_as<T>();
    std::fill(d, d + dense.numel(), T(0));
    const std::int64_t* rp = hp.row_ptr.data_as<std::int64_t>();
    const std::int32_t* ci = hp.col_idx.data_as<std::int32_t>();
    const T* v = hv.data_as<T>();
    for (std::int64_t r = 0; r < w.rows; ++r)
      for (std::int64_t e = rp[r]; e < rp[r + 1]; ++e) d[r * w.cols + ci[e]] = v[e];
  });
  if (out.is_cuda()) SEISOKU_DISPATCH(out, copy, dense.to(Device::cuda, out.device_index()), out);
}

void sparse_linear(const Tensor& x, const SparsePattern& w, const Tensor& values, const Tensor& bias,
                   const Tensor& out, const Epilogue& e) {
  const char* op = "sparse_linear";
  check_float_matrix(op, "x", x);
  check_float_matrix(op, "out", out);
  check_operand(op, x, w, values);
  if (x.shape()[1] != w.cols)
    detail::fail(op, "x has " + num(x.shape()[1]) + " features but the sparse weight expects " + num(w.cols) +
                         " (weight shape (" + num(w.rows) + ", " + num(w.cols) + "))");
  if (x.shape()[0] == 0) detail::fail(op, "empty batch: x has shape " + shape_str(x.shape()));
  detail::check_same_dtype(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
  detail::check_shape(op, "out", out, {x.shape()[0], w.rows});
  detail::check_no_overlap(op, "x", x, "out", out);
  if (bias.defined()) {
    if (bias.dim() != 1 || bias.shape()[0] != w.rows)
      detail::fail(op, "bias must have shape (" + num(w.rows) + ",), got " + shape_str(bias.shape()));
    detail::check_same_dtype(op, "x", x, "bias", bias);
    detail::check_same_device(op, "x", x, "bias", bias);
  }
  if (static_cast<int>(e.activation) < 0 || static_cast<int>(e.activation) > 4)
    detail::fail(op, "unknown activation " + std::to_string(static_cast<int>(e.activation)));
  if (e.activation == Activation::leaky_relu && !(e.slope >= 0.0 && std::isfinite(e.slope)))
    detail::fail(op, "leaky_relu slope must be finite and >= 0, got " + std::to_string(e.slope));
  if (detail::drops(e.dropout_p)) {
    // The dense layer's epilogue pass (its checks included) draws the same mask.
    SEISOKU_DISPATCH(x, sparse_linear, x, w, values, Tensor(), out, Activation::identity, 0.0);
    bias_act_dropout(out, bias, out, e);
    return;
  }
  SEISOKU_DISPATCH(x, sparse_linear, x, w, values, bias, out, e.activation, e.slope);
}

void sparse_linear_backward(const Tensor& grad_z, const Tensor& x, const SparsePattern& w, const Tensor& values,
                            const Tensor& grad_x, const Tensor& grad_values, const Tensor& grad_bias,
                            bool accumulate) {
  const char* op = "sparse_linear_backward";
  check_float_matrix(op, "grad_z", grad_z);
  check_float_matrix(op, "x", x);
  check_operand(op, x, w, values);
  if (x.shape()[1] != w.cols || grad_z.shape()[1] != w.rows || grad_z.shape()[0] != x.shape()[0])
    detail::fail(op, "shapes do not match: grad_z " + shape_str(grad_z.shape()) + ", x " + shape_str(x.shape()) +
                         ", sparse weight (" + num(w.rows) + ", " + num(w.cols) + ")");
  if (x.shape()[0] == 0) detail::fail(op, "empty batch: x has shape " + shape_str(x.shape()));
  detail::check_same_dtype(op, "grad_z", grad_z, "x", x);
  detail::check_same_device(op, "grad_z", grad_z, "x", x);
  if (grad_x.defined()) {
    detail::check_same_dtype(op, "grad_x", grad_x, "x", x);
    detail::check_same_device(op, "grad_x", grad_x, "x", x);
    detail::check_shape(op, "grad_x", grad_x, x.shape());
    detail::check_no_overlap(op, "grad_x", grad_x, "grad_z", grad_z);
  }
  if (grad_values.defined()) {
    detail::check_same_dtype(op, "grad_values", grad_values, "x", x);
    detail::check_same_device(op, "grad_values", grad_values, "x", x);
    detail::check_shape(op, "grad_values", grad_values, values.shape());
  }
  if (grad_x.defined() || grad_values.defined())
    SEISOKU_DISPATCH(x, sparse_linear_backward, grad_z, x, w, values, grad_x, grad_values, accumulate);
  if (grad_bias.defined()) column_sum(grad_z, grad_bias, accumulate);
}

}  // namespace seisoku
