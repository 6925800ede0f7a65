#pragma once
// The kernel entry points behind the front-ends: seisoku::cpu (cpp/src/cpu/) and
// seisoku::gpu (cuda/). Same op names as the public API; arguments are already validated.
// Front-ends call them through SEISOKU_DISPATCH, which without CUDA turns every GPU call
// into "seisoku was built without CUDA".
#include <cstddef>
#include <cstdint>

#include "seisoku/tensor.hpp"

namespace seisoku {

namespace detail {
[[noreturn]] void throw_no_cuda();  // cuda/no_cuda.cpp; also used by runtime stubs
}  // namespace detail

#if defined(SEISOKU_WITH_CUDA)
#define SEISOKU_GPU_CALL(op, ...) ::seisoku::gpu::op(__VA_ARGS__)
#else
#define SEISOKU_GPU_CALL(op, ...) ::seisoku::detail::throw_no_cuda()
#endif

// Runs op on the device of `tensor`: gpu::op for CUDA tensors, cpu::op otherwise.
#define SEISOKU_DISPATCH(tensor, op, ...)   \
  do {                                      \
    if ((tensor).is_cuda()) {               \
      SEISOKU_GPU_CALL(op, __VA_ARGS__);    \
    } else {                                \
      ::seisoku::cpu::op(__VA_ARGS__);      \
    }                                       \
  } while (0)

#define SEISOKU_KERNEL_DECLS                                                                             \
  void add(const Tensor& a, const Tensor& b, const Tensor& out);                                        \
  void mul(const Tensor& a, const Tensor& b, const Tensor& out);                                        \
  void axpy(double alpha, const Tensor& x, const Tensor& y);                                            \
  void scale(double alpha, const Tensor& x, const Tensor& out);                                         \
  void axpy_sign(double alpha, const Tensor& x, const Tensor& y);                                       \
  void fill(const Tensor& out, double value);                                                           \
  void copy(const Tensor& src, const Tensor& dst);                                                      \
  void sum(const Tensor& x, const Tensor& out);                                                         \
  void mean(const Tensor& x, const Tensor& out);                                                        \
  void max(const Tensor& x, const Tensor& out);                                                         \
  void norm(const Tensor& x, double ord, const Tensor& out);                                            \
  void row_norm(const Tensor& x, double ord, const Tensor& out);                                        \
  void column_sum(const Tensor& x, const Tensor& out, bool accumulate);                                 \
  void gemm(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, double alpha, \
            double beta);                                                                               \
  void uniform(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double low, double high);   \
  void normal(const Tensor& out, std::uint64_t seed, std::uint64_t offset, double mean, double stddev); \
  void bernoulli(const Tensor& out, std::uint64_t seed, std::uint64_t offset, std::uint64_t threshold);

namespace cpu {
SEISOKU_KERNEL_DECLS
// c = op(a) @ op(b), plus c when accumulate, over the nonzero entries of op(a) only, when
// op(a) is mostly zeros and the product large enough to gain (cpu/sparse.cpp); returns false,
// writing nothing, otherwise. Float tensors of gemm's shapes.
bool sparse_gemm(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, bool accumulate);
}  // namespace cpu

namespace gpu {
SEISOKU_KERNEL_DECLS
// Device memory and runtime (cuda/runtime.cu).
void* allocate(std::size_t bytes, int device);
void deallocate(void* p, int device);
// Copies between host and device or device and device (same dtype, contiguous).
void copy_bytes(const Tensor& src, const Tensor& dst);
}  // namespace gpu

#undef SEISOKU_KERNEL_DECLS

}  // namespace seisoku
