#pragma once
// Threads, build information and the CUDA runtime, without CUDA headers.
#include <cstdint>
#include <map>
#include <string>

#include "seisoku/export.hpp"

namespace seisoku {

// Threads for seisoku's CPU kernels and its GEMM tiles; n >= 1. The count is seisoku's own: other
// users of the OpenMP runtime (omp_set_num_threads, torch.set_num_threads) do not change it, and
// OpenBLAS itself stays single-threaded.
SEISOKU_API void set_num_threads(int n);
SEISOKU_API int get_num_threads();

// Key/value facts about this build and machine: version, cuda_built, cuda_archs, openmp,
// native, cpu_features (compiled in), cpu_supports (seen at run time), blas, blas_core,
// blas_config, num_threads.
SEISOKU_API std::map<std::string, std::string> build_info();

namespace cuda {
SEISOKU_API bool is_built();       // compiled with CUDA kernels
SEISOKU_API bool is_available();   // built with CUDA and at least one device usable
SEISOKU_API int device_count();    // 0 when unavailable
SEISOKU_API std::string device_name(int index);
SEISOKU_API void synchronize();
// Device index that owns a device pointer; throws std::invalid_argument for host memory.
SEISOKU_API int pointer_device(const void* p);
// The stream the CUDA ops of this thread enqueue on (nullptr: the legacy default stream).
SEISOKU_API void* current_stream();
SEISOKU_API void set_current_stream(void* stream);
// Where cuBLAS was loaded from, loading it on first use; throws std::runtime_error if absent.
SEISOKU_API std::string cublas_library();

// Sets the current stream for the lifetime of the guard.
class StreamGuard {
 public:
  explicit StreamGuard(void* stream) : previous_(current_stream()) { set_current_stream(stream); }
  ~StreamGuard() { set_current_stream(previous_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  void* previous_;
};
}  // namespace cuda

}  // namespace seisoku
