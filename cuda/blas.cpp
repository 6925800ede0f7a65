// GPU GEMM through cuBLAS, loaded at run time with dlopen so that the CUDA build needs no
// cuBLAS headers or library at build time. Search order: $SEISOKU_CUBLAS (a full path),
// then libcublas.so.13 / .12 / libcublas.so by the loader's usual rules (already loaded by
// CuPy or seisoku.cuda's preload of the nvidia-cublas wheel, LD_LIBRARY_PATH, ld.so.cache).
// Row-major C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T.
#include <dlfcn.h>

#include <cstdlib>
#include <vector>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cuda_util.hpp"
#include "kernels/core.hpp"

namespace seisoku {
namespace {

using Handle = void*;
using CreateFn = int (*)(Handle*);
using SetStreamFn = int (*)(Handle, cudaStream_t);
using SgemmFn = int (*)(Handle, int, int, int, int, int, const float*, const float*, int, const float*, int,
                        const float*, float*, int);
using DgemmFn = int (*)(Handle, int, int, int, int, int, const double*, const double*, int, const double*, int,
                        const double*, double*, int);
constexpr int kOpN = 0, kOpT = 1;

struct Cublas {
  std::string path;
  CreateFn create = nullptr;
  SetStreamFn set_stream = nullptr;
  SgemmFn sgemm = nullptr;
  DgemmFn dgemm = nullptr;
  std::mutex mutex;
  std::unordered_map<int, Handle> handles;  // one per device, kept for the process lifetime
};

Cublas& cublas() {
  static Cublas* lib = [] {
    auto* c = new Cublas();
    std::string tried;
    void* h = nullptr;
    std::vector<std::string> names;
    if (const char* env = std::getenv("SEISOKU_CUBLAS")) names.emplace_back(env);
    for (const char* n : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) names.emplace_back(n);
    for (const std::string& n : names) {
      h = dlopen(n.c_str(), RTLD_NOW | RTLD_GLOBAL);
      if (h) {
        c->path = n;
        break;
      }
      tried += " " + n;
    }
    if (h) {
      c->create = reinterpret_cast<CreateFn>(dlsym(h, "cublasCreate_v2"));
      c->set_stream = reinterpret_cast<SetStreamFn>(dlsym(h, "cublasSetStream_v2"));
      c->sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cublasSgemm_v2"));
      c->dgemm = reinterpret_cast<DgemmFn>(dlsym(h, "cublasDgemm_v2"));
      if (!c->create || !c->set_stream || !c->sgemm || !c->dgemm) c->path = "";
    }
    if (c->path.empty()) c->path = "!cuBLAS not found (tried" + tried + "); install the nvidia-cublas wheel or set SEISOKU_CUBLAS";
    return c;
  }();
  if (!lib->path.empty() && lib->path[0] == '!') throw std::runtime_error("[gemm] " + lib->path.substr(1));
  return *lib;
}

void check_cublas(int status, const char* what) {
  if (status != 0) throw std::runtime_error(std::string("[gemm] cuBLAS ") + what + " failed with status " + std::to_string(status));
}

Handle handle_for(int device) {
  Cublas& c = cublas();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.handles.find(device);
  if (it != c.handles.end()) return it->second;
  Handle h = nullptr;
  check_cublas(c.create(&h), "cublasCreate");
  c.handles[device] = h;
  return h;
}

}  // namespace

namespace cuda {
std::string cublas_library() { return cublas().path; }
}  // namespace cuda

namespace gpu {

void gemm(const Tensor& a, const Tensor& b, const Tensor& c, bool trans_a, bool trans_b, double alpha, double beta) {
  const int m = static_cast<int>(c.shape()[0]);
  const int n = static_cast<int>(c.shape()[1]);
  const int k = static_cast<int>(trans_a ? a.shape()[0] : a.shape()[1]);
  if (m == 0 || n == 0) return;
  DeviceGuard guard(c.device_index());
  if (k == 0) {
    if (beta == 0.0) gpu::fill(c, 0.0); else gpu::scale(beta, c, c);
    return;
  }
  Cublas& lib = cublas();
  Handle h = handle_for(c.device_index());
  check_cublas(lib.set_stream(h, stream()), "cublasSetStream");
  const int lda = static_cast<int>(a.shape()[1]);
  const int ldb = static_cast<int>(b.shape()[1]);
  const int op_a = trans_a ? kOpT : kOpN, op_b = trans_b ? kOpT : kOpN;
  if (c.dtype() == DType::float32) {
    const float al = static_cast<float>(alpha), be = static_cast<float>(beta);
    check_cublas(lib.sgemm(h, op_b, op_a, n, m, k, &al, b.data_as<float>(), ldb, a.data_as<float>(), lda, &be,
                           c.data_as<float>(), n), "sgemm");
  } else {
    check_cublas(lib.dgemm(h, op_b, op_a, n, m, k, &alpha, b.data_as<double>(), ldb, a.data_as<double>(), lda, &beta,
                           c.data_as<double>(), n), "dgemm");
  }
}

}  // namespace gpu
}  // namespace seisoku
