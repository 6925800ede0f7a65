// Threads and build information (host side; the CUDA half lives in cuda/runtime.cu or
// cuda/no_cuda.cpp).
#include "seisoku/runtime.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "build_config.hpp"
#include "core/check.hpp"
#include "cpu/parallel.hpp"

namespace seisoku {

namespace {

// The count a parallel region without a num_threads clause would get in a fresh process:
// OMP_NUM_THREADS (its first level) when set to a positive number, else the processors this
// process may run on. Read from the environment rather than from omp_get_max_threads(), which
// another library may already have changed by the time seisoku first runs.
int default_threads() {
#if defined(_OPENMP)
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && n >= 1 && n <= 1 << 16) return static_cast<int>(n);
  }
  return std::max(1, omp_get_num_procs());
#else
  return 1;
#endif
}

// Set from default_threads() on first use, then by set_num_threads only.
std::atomic<int>& thread_count() {
  static std::atomic<int> count{default_threads()};
  return count;
}

}  // namespace

namespace cpu {

int max_threads() {
#if defined(_OPENMP)
  return thread_count().load(std::memory_order_relaxed);
#else
  return 1;
#endif
}

}  // namespace cpu

void set_num_threads(int n) {
  if (n < 1) detail::fail("set_num_threads", "n must be >= 1, got " + std::to_string(n));
  // seisoku's count only: the OpenMP runtime's default (omp_set_num_threads), which other
  // libraries in the process read, is left alone. OpenBLAS stays single-threaded: GEMM tiles
  // run on these threads (cpu/blas.cpp).
  thread_count().store(n, std::memory_order_relaxed);
}

int get_num_threads() { return cpu::max_threads(); }

namespace {

std::string compiled_cpu_features() {
  std::string f;
  auto add = [&f](const char* name) { f += (f.empty() ? "" : " ") + std::string(name); };
#if defined(__SSE4_2__)
  add("sse4.2");
#endif
#if defined(__AVX__)
  add("avx");
#endif
#if defined(__AVX2__)
  add("avx2");
#endif
#if defined(__FMA__)
  add("fma");
#endif
#if defined(__F16C__)
  add("f16c");
#endif
#if defined(__AVX512F__)
  add("avx512f");
#endif
#if defined(__AVX512BW__)
  add("avx512bw");
#endif
#if defined(__ARM_NEON)
  add("neon");
#endif
  return f.empty() ? "baseline" : f;
}

std::string runtime_cpu_features() {
  std::string f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  auto add = [&f](bool has, const char* name) {
    if (has) f += (f.empty() ? "" : " ") + std::string(name);
  };
  add(__builtin_cpu_supports("sse4.2"), "sse4.2");
  add(__builtin_cpu_supports("avx"), "avx");
  add(__builtin_cpu_supports("avx2"), "avx2");
  add(__builtin_cpu_supports("fma"), "fma");
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;  // F16C: CPUID leaf 1, ECX bit 29
  add(__get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0, "f16c");
  add(__builtin_cpu_supports("avx512f"), "avx512f");
  add(__builtin_cpu_supports("avx512bw"), "avx512bw");
#endif
  return f.empty() ? "unknown" : f;
}

}  // namespace

std::map<std::string, std::string> build_info() {
  std::map<std::string, std::string> info;
  info["version"] = SEISOKU_VERSION_STRING;
  info["cuda_built"] = cuda::is_built() ? "yes" : "no";
  info["cuda_archs"] = SEISOKU_CUDA_ARCHS_STRING;
  info["openmp"] = std::string(SEISOKU_OPENMP_ENABLED) == "ON" ? "yes" : "no";
  info["native"] = std::string(SEISOKU_NATIVE_ENABLED) == "ON" ? "yes" : "no";
  info["cpu_features"] = compiled_cpu_features();
  info["cpu_supports"] = runtime_cpu_features();
  info["blas"] = "OpenBLAS (scipy-openblas32)";
  info["blas_core"] = scipy_openblas_get_corename();
  info["blas_config"] = scipy_openblas_get_config();
  info["blas_threads"] = std::to_string(scipy_openblas_get_num_threads());
  info["num_threads"] = std::to_string(get_num_threads());
  info["compiler"] = std::string("GCC-compatible ") + __VERSION__;
  return info;
}

}  // namespace seisoku
