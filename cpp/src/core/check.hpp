#pragma once
// Argument checks shared by the op front-ends. Each throws std::invalid_argument with
// "[op] what is wrong, and the value seen", which Python sees as ValueError.
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "seisoku/tensor.hpp"

namespace seisoku::detail {

[[noreturn]] inline void fail(const char* op, const std::string& msg) {
  throw std::invalid_argument(std::string("[") + op + "] " + msg);
}

inline void check_defined(const char* op, const char* name, const Tensor& t) {
  if (!t.defined()) fail(op, std::string(name) + " is missing");
}

inline void check_dtype(const char* op, const char* name, const Tensor& t, std::initializer_list<DType> allowed) {
  for (DType d : allowed)
    if (t.dtype() == d) return;
  std::string names;
  for (DType d : allowed) names += std::string(names.empty() ? "" : ", ") + dtype_name(d);
  fail(op, std::string(name) + " must have dtype " + names + ", got " + dtype_name(t.dtype()));
}

inline void check_same_dtype(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  if (a.dtype() != b.dtype())
    fail(op, std::string(a_name) + " and " + b_name + " must have the same dtype, got " + dtype_name(a.dtype()) +
                 " and " + dtype_name(b.dtype()));
}

inline void check_same_shape(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  if (a.shape() != b.shape())
    fail(op, std::string(a_name) + " and " + b_name + " must have the same shape, got " + shape_str(a.shape()) +
                 " and " + shape_str(b.shape()));
}

inline void check_same_device(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  if (a.device() != b.device() || a.device_index() != b.device_index())
    fail(op, std::string(a_name) + " is on " + device_name(a.device()) + ":" + std::to_string(a.device_index()) +
                 " but " + b_name + " is on " + device_name(b.device()) + ":" + std::to_string(b.device_index()));
}

inline void check_nonempty(const char* op, const char* name, const Tensor& t) {
  if (t.numel() == 0) fail(op, std::string(name) + " is empty (shape " + shape_str(t.shape()) + ")");
}

inline void check_numel(const char* op, const char* name, const Tensor& t, std::int64_t n) {
  if (t.numel() != n)
    fail(op, std::string(name) + " must have " + std::to_string(n) + " element(s), got shape " + shape_str(t.shape()));
}

inline void check_shape(const char* op, const char* name, const Tensor& t, const Shape& expected) {
  if (t.shape() != expected)
    fail(op, std::string(name) + " must have shape " + shape_str(expected) + ", got " + shape_str(t.shape()));
}

// An output must not share memory with another argument (kernels read inputs while writing).
inline void check_no_overlap(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  if (a.numel() == 0 || b.numel() == 0 || a.device() != b.device() || a.device_index() != b.device_index()) return;
  const auto* a0 = static_cast<const char*>(a.data());
  const auto* b0 = static_cast<const char*>(b.data());
  if (a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes())
    fail(op, std::string(a_name) + " and " + b_name + " must not overlap in memory");
}

// gemm's checks (cpp/src/blas.cpp): 2-D float tensors of one dtype and device, matching
// shapes, finite alpha and beta, dimensions within the 32-bit BLAS limit.
void check_gemm(const char* op, const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b,
                double alpha, double beta);

}  // namespace seisoku::detail
