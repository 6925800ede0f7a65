// Built without CUDA: the CUDA runtime API answers "no devices", and every entry point that
// needs a GPU raises a clear error (ops reach it through SEISOKU_DISPATCH).
#include <stdexcept>

#include "kernels/core.hpp"
#include "seisoku/runtime.hpp"

namespace seisoku {

namespace detail {
void throw_no_cuda() {
  throw std::runtime_error("seisoku was built without CUDA (rebuild with SEISOKU_CUDA=ON on a machine with nvcc)");
}
}  // namespace detail

namespace cuda {
bool is_built() { return false; }
bool is_available() { return false; }
int device_count() { return 0; }
std::string device_name(int) { detail::throw_no_cuda(); }
void synchronize() { detail::throw_no_cuda(); }
int pointer_device(const void*) { detail::throw_no_cuda(); }
void* current_stream() { return nullptr; }
void set_current_stream(void*) {}
std::string cublas_library() { detail::throw_no_cuda(); }
}  // namespace cuda

}  // namespace seisoku
