// CUDA runtime half of seisoku: device queries, memory, copies and the per-thread current
// stream. No device code here.
#include <cuda_runtime.h>

#include "cuda_util.hpp"
#include "kernels/core.hpp"

namespace seisoku {
namespace {
thread_local void* g_stream = nullptr;
}  // namespace

namespace cuda {

bool is_built() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return n;
}

bool is_available() { return device_count() > 0; }

std::string device_name(int index) {
  const int n = device_count();
  if (index < 0 || index >= n)
    throw std::invalid_argument("[cuda.device_name] index " + std::to_string(index) + " out of range: " +
                                std::to_string(n) + " device(s)");
  cudaDeviceProp prop{};
  SEISOKU_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
         std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
}

void synchronize() { SEISOKU_CUDA_CHECK(cudaDeviceSynchronize()); }

int pointer_device(const void* p) {
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, p);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw std::invalid_argument(std::string("[cuda] cannot query pointer: ") + cudaGetErrorString(err));
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    throw std::invalid_argument("[cuda] pointer is not CUDA device memory");
  return attr.device;
}

void* current_stream() { return g_stream; }
void set_current_stream(void* stream) { g_stream = stream; }

}  // namespace cuda

namespace gpu {

void* allocate(std::size_t bytes, int device) {
  if (!cuda::is_available()) throw std::runtime_error("[tensor] no CUDA device is available");
  DeviceGuard guard(device);
  void* p = nullptr;
  SEISOKU_CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 1 : bytes));
  return p;
}

void deallocate(void* p, int device) {
  if (p == nullptr) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device);
  cudaFree(p);  // never throws from a destructor
  cudaSetDevice(previous);
}

void copy_bytes(const Tensor& src, const Tensor& dst) {
  if (src.nbytes() == 0) return;
  const int device = dst.is_cuda() ? dst.device_index() : src.device_index();
  DeviceGuard guard(device);
  const cudaMemcpyKind kind = src.is_cuda() ? (dst.is_cuda() ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                                            : cudaMemcpyHostToDevice;
  if (src.is_cuda() && dst.is_cuda() && src.device_index() != dst.device_index()) {
    SEISOKU_CUDA_CHECK(cudaMemcpyPeerAsync(dst.data(), dst.device_index(), src.data(), src.device_index(),
                                           src.nbytes(), stream()));
  } else {
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.nbytes(), kind, stream()));
  }
  // The host side may read or free its memory right after: finish before returning.
  SEISOKU_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

}  // namespace gpu
}  // namespace seisoku
