// Built without CUDA: every CUDA entry point raises a clear error.
#include <stdexcept>

#include "kernels.hpp"
#include "seisoku/runtime.hpp"

namespace seisoku {
namespace {
[[noreturn]] void no_cuda() {
  throw std::runtime_error("seisoku was built without CUDA (rebuild with SEISOKU_CUDA=ON on a machine with nvcc)");
}
}  // namespace

namespace gpu {
void add(const Tensor&, const Tensor&, const Tensor&) { no_cuda(); }
void mul(const Tensor&, const Tensor&, const Tensor&) { no_cuda(); }
void axpy(double, const Tensor&, const Tensor&) { no_cuda(); }
void scale(double, const Tensor&, const Tensor&) { no_cuda(); }
void fill(const Tensor&, double) { no_cuda(); }
void copy(const Tensor&, const Tensor&) { no_cuda(); }
void sum(const Tensor&, const Tensor&) { no_cuda(); }
void mean(const Tensor&, const Tensor&) { no_cuda(); }
void max(const Tensor&, const Tensor&) { no_cuda(); }
void norm(const Tensor&, double, const Tensor&) { no_cuda(); }
void row_norm(const Tensor&, double, const Tensor&) { no_cuda(); }
void gemm(const Tensor&, const Tensor&, const Tensor&, bool, bool, double, double) { no_cuda(); }
void uniform(const Tensor&, std::uint64_t, std::uint64_t, double, double) { no_cuda(); }
void normal(const Tensor&, std::uint64_t, std::uint64_t, double, double) { no_cuda(); }
void bernoulli(const Tensor&, std::uint64_t, std::uint64_t, std::uint64_t) { no_cuda(); }
void* allocate(std::size_t, int) { no_cuda(); }
void deallocate(void*, int) {}
void copy_bytes(const Tensor&, const Tensor&) { no_cuda(); }
}  // namespace gpu

namespace cuda {
bool is_built() { return false; }
bool is_available() { return false; }
int device_count() { return 0; }
std::string device_name(int) { no_cuda(); }
void synchronize() { no_cuda(); }
int pointer_device(const void*) { no_cuda(); }
void* current_stream() { return nullptr; }
void set_current_stream(void*) {}
std::string cublas_library() { no_cuda(); }
}  // namespace cuda
}  // namespace seisoku
