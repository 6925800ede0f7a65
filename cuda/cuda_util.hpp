#pragma once
// Shared by the CUDA sources: the error-check macro, the device guard, the current stream
// and launch sizes.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "seisoku/runtime.hpp"

#define SEISOKU_CUDA_CHECK(expr)                                                                   \
  do {                                                                                             \
    const cudaError_t seisoku_err_ = (expr);                                                       \
    if (seisoku_err_ != cudaSuccess)                                                               \
      throw std::runtime_error(std::string("CUDA error at ") + __FILE__ + ":" + std::to_string(__LINE__) + \
                               ": " + cudaGetErrorName(seisoku_err_) + ": " + cudaGetErrorString(seisoku_err_) + \
                               " (" #expr ")");                                                   \
  } while (0)

namespace seisoku::gpu {

// Makes `device` current for the guard's lifetime.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    SEISOKU_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) SEISOKU_CUDA_CHECK(cudaSetDevice(device));
    restore_ = previous_ != device;
  }
  ~DeviceGuard() {
    if (restore_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool restore_ = false;
};

inline cudaStream_t stream() { return static_cast<cudaStream_t>(cuda::current_stream()); }

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items.
inline unsigned grid_for(std::int64_t n, int per_thread = 1) {
  const std::int64_t blocks = (n + std::int64_t{kThreads} * per_thread - 1) / (std::int64_t{kThreads} * per_thread);
  return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, 65536));
}

inline void check_launch() { SEISOKU_CUDA_CHECK(cudaGetLastError()); }

}  // namespace seisoku::gpu
