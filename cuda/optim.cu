// CUDA twins of the optim kernels (cpp/src/cpu/optim.cpp).
//
// optim_step: one launch per group for every tensor of it. The host builds a chunk table (tensor
// index, element range) and uploads it with the tensor table (pointers and coefficients) to a
// per-device workspace in one copy; block b takes chunk b. Elementwise chunks hold kOptimChunk
// elements, strided over the block's threads. With the fused non-finite check, an element whose
// gradient is NaN or Inf keeps its value and state (optim_element selects) and a max-norm row
// holding one is skipped (a warp vote before the row is updated); the counts go to per tensor
// counters that come back to the host (a device-to-host sync) for the front-end to raise. Max-norm chunks hold whole rows: each warp takes one row at a
// time, updates it, sums the squares of the new row in its lanes (lane l: elements l, l + 32, ...),
// folds them with a shuffle-down tree (the CPU folds in the same order) and rescales the row while
// it is in L1. The per-element math is optim_element, shared with the CPU.
//
// optim_grad_check / optim_stats: one warp per block of kOptimBlock elements, partials copied back
// and combined on the host in block order (a device-to-host sync). max_norm_project (any axis):
// one warp per unit.
//
// The workspace is reused across calls in stream order; a call on another stream first waits for
// the stream that used it last.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/optim.hpp"
#include "kernels/optim_math.hpp"

namespace seisoku::gpu {
namespace {

using detail::kOptimBlock;
using detail::kOptimLanes;
using detail::OptimPlan;
using detail::OptimScalars;
using detail::OptimTensor;

constexpr int kWarps = kThreads / 32;

struct Chunk {
  std::int32_t tensor;
  std::int64_t begin, end;
};

struct Range {
  const void* x;
  std::int64_t begin, end;
};

// A grow-only device buffer per device, reused in stream order.
struct Workspace {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  cudaStream_t last = nullptr;
};

std::mutex g_workspace_mutex;
std::unordered_map<int, Workspace> g_workspaces;

// Copies `host` (bytes) to the device workspace and returns its device address. The caller holds
// the returned lock while it enqueues the kernels that read the workspace.
void* upload(int device, const void* host, std::size_t bytes, std::size_t extra, std::unique_lock<std::mutex>& lock) {
  lock = std::unique_lock<std::mutex>(g_workspace_mutex);
  Workspace& ws = g_workspaces[device];
  const cudaStream_t s = stream();
  if (ws.ptr != nullptr && ws.last != s) SEISOKU_CUDA_CHECK(cudaStreamSynchronize(ws.last));
  const std::size_t need = bytes + extra;
  if (need > ws.bytes) {
    if (ws.ptr != nullptr) {
      SEISOKU_CUDA_CHECK(cudaStreamSynchronize(s));  // kernels of this stream may still read it
      SEISOKU_CUDA_CHECK(cudaFree(ws.ptr));
    }
    ws.ptr = nullptr;
    const std::size_t size = std::max<std::size_t>(need * 2, 1 << 16);
    SEISOKU_CUDA_CHECK(cudaMalloc(&ws.ptr, size));
    ws.bytes = size;
  }
  ws.last = s;
  if (bytes > 0) SEISOKU_CUDA_CHECK(cudaMemcpyAsync(ws.ptr, host, bytes, cudaMemcpyHostToDevice, s));
  return ws.ptr;
}

std::size_t align8(std::size_t n) { return (n + 7) / 8 * 8; }

template <class A>
__device__ A warp_fold(A v) {
  for (int off = kOptimLanes / 2; off >= 1; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

template <class T>
__device__ bool nonfinite_value(T v) {
  return !((v < T(0) ? -v : v) <= std::numeric_limits<T>::max());
}

template <class V, bool CHECK, class T>
__global__ void optim_step_kernel(const OptimTensor* tensors, const Chunk* chunks, OptimScalars scalars,
                                  unsigned long long* nonfinite) {
  const Chunk ch = chunks[blockIdx.x];
  const OptimTensor t = tensors[ch.tensor];
  const detail::OptimConst<T> c = detail::optim_const<T>(scalars, t);
  T* w = static_cast<T*>(t.w);
  const T* g = static_cast<const T*>(t.g);
  T* s0 = static_cast<T*>(t.s0);
  T* s1 = static_cast<T*>(t.s1);
  T* s2 = static_cast<T*>(t.s2);
  unsigned long long bad = 0;
  if (t.row == 0) {
    if (c.first) {
      for (std::int64_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x)
        bad += !detail::optim_element<V, true, CHECK>(c, w, g, s0, s1, s2, i);
    } else {
      for (std::int64_t i = ch.begin + threadIdx.x; i < ch.end; i += blockDim.x)
        bad += !detail::optim_element<V, false, CHECK>(c, w, g, s0, s1, s2, i);
    }
    if (CHECK && bad != 0) atomicAdd(nonfinite + ch.tensor, bad);
    return;
  }
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  for (std::int64_t base = ch.begin + warp * t.row; base < ch.end; base += std::int64_t{kWarps} * t.row) {
    if (CHECK) {  // a row holding a non-finite gradient value is skipped whole
      unsigned long long row_bad = 0;
      for (std::int64_t j = base + lane; j < base + t.row; j += 32) row_bad += nonfinite_value(g[j]);
      if (__any_sync(0xffffffffu, row_bad != 0)) {
        bad += row_bad;
        continue;
      }
    }
    double acc = 0.0;
    for (std::int64_t j = base + lane; j < base + t.row; j += 32) {
      if (c.first) detail::optim_element<V, true, false>(c, w, g, s0, s1, s2, j);
      else detail::optim_element<V, false, false>(c, w, g, s0, s1, s2, j);
      const double v = static_cast<double>(w[j]);
      acc += v * v;
    }
    acc = warp_fold(acc);
    const double norm = sqrt(__shfl_sync(0xffffffffu, acc, 0));
    if (norm > t.max_norm) {
      const T s = static_cast<T>(t.max_norm / norm);
      for (std::int64_t j = base + lane; j < base + t.row; j += 32) w[j] = w[j] * s;
    }
  }
  if (CHECK && bad != 0) atomicAdd(nonfinite + ch.tensor, bad);
}

// One warp per range: sum of squares and count of non-finite values.
template <class T>
__global__ void grad_check_kernel(const Range* ranges, std::int64_t count, double* sumsq, long long* bad) {
  const std::int64_t r = blockIdx.x * std::int64_t{kWarps} + threadIdx.x / 32;
  if (r >= count) return;
  const int lane = threadIdx.x % 32;
  const Range rg = ranges[r];
  const T* x = static_cast<const T*>(rg.x);
  double acc = 0.0;
  long long cnt = 0;
  const T big = std::numeric_limits<T>::max();
  for (std::int64_t j = rg.begin + lane; j < rg.end; j += 32) {
    const T v = x[j];
    const double d = static_cast<double>(v);
    acc += d * d;
    cnt += !((v < T(0) ? -v : v) <= big);
  }
  acc = warp_fold(acc);
  cnt = warp_fold(cnt);
  if (lane == 0) {
    sumsq[r] = acc;
    bad[r] = cnt;
  }
}

template <class T>
__global__ void stats_kernel(const Range* ranges, std::int64_t count, double* abs_sum, double* sq_sum, long long* nnz) {
  const std::int64_t r = blockIdx.x * std::int64_t{kWarps} + threadIdx.x / 32;
  if (r >= count) return;
  const int lane = threadIdx.x % 32;
  const Range rg = ranges[r];
  const T* x = static_cast<const T*>(rg.x);
  double a = 0.0, s = 0.0;
  long long z = 0;
  for (std::int64_t j = rg.begin + lane; j < rg.end; j += 32) {
    const T v = x[j];
    const double d = static_cast<double>(v);
    a += d < 0.0 ? -d : d;
    s += d * d;
    z += v != T(0);
  }
  a = warp_fold(a);
  s = warp_fold(s);
  z = warp_fold(z);
  if (lane == 0) {
    abs_sum[r] = a;
    sq_sum[r] = s;
    nnz[r] = z;
  }
}

template <class T>
__global__ void max_norm_kernel(T* x, double max_norm, std::int64_t outer, std::int64_t units, std::int64_t inner) {
  const std::int64_t j = blockIdx.x * std::int64_t{kWarps} + threadIdx.x / 32;
  if (j >= units) return;
  const int lane = threadIdx.x % 32;
  const std::int64_t per_unit = outer * inner;
  double acc = 0.0;
  for (std::int64_t k = lane; k < per_unit; k += 32) {
    const double v = static_cast<double>(x[(k / inner * units + j) * inner + k % inner]);
    acc += v * v;
  }
  acc = warp_fold(acc);
  const double norm = sqrt(__shfl_sync(0xffffffffu, acc, 0));
  if (norm > max_norm) {
    const T s = static_cast<T>(max_norm / norm);
    for (std::int64_t k = lane; k < per_unit; k += 32) {
      const std::int64_t at = (k / inner * units + j) * inner + k % inner;
      x[at] = x[at] * s;
    }
  }
}

// Ranges of kOptimBlock elements over a list of tensors, and the tensor of each.
void block_ranges(const std::vector<Tensor>& ts, std::vector<Range>& ranges, std::vector<std::size_t>& owner) {
  for (std::size_t i = 0; i < ts.size(); ++i)
    for (std::int64_t b = 0; b < ts[i].numel(); b += kOptimBlock) {
      ranges.push_back({ts[i].data(), b, std::min(ts[i].numel(), b + kOptimBlock)});
      owner.push_back(i);
    }
}

unsigned warps_grid(std::int64_t count) { return static_cast<unsigned>((count + kWarps - 1) / kWarps); }

}  // namespace

void optim_step(const OptimPlan& plan, std::int64_t* nonfinite) {
  std::vector<Chunk> chunks;
  for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
    const OptimTensor& t = plan.tensors[i];
    const std::int64_t step = detail::optim_chunk(t.row);
    for (std::int64_t b = 0; b < t.numel; b += step)
      chunks.push_back({static_cast<std::int32_t>(i), b, std::min(t.numel, b + step)});
  }
  if (chunks.empty()) return;
  DeviceGuard guard(plan.device_index);
  const std::size_t n = plan.tensors.size();
  const std::size_t tbytes = align8(n * sizeof(OptimTensor));
  const std::size_t cbytes = align8(chunks.size() * sizeof(Chunk));
  const std::size_t nbytes = nonfinite != nullptr ? n * sizeof(unsigned long long) : 0;
  std::vector<unsigned char> host(tbytes + cbytes + nbytes, 0);  // the counters start at zero
  std::memcpy(host.data(), plan.tensors.data(), n * sizeof(OptimTensor));
  std::memcpy(host.data() + tbytes, chunks.data(), chunks.size() * sizeof(Chunk));
  std::unique_lock<std::mutex> lock;
  auto* dev = static_cast<unsigned char*>(upload(plan.device_index, host.data(), host.size(), 0, lock));
  const auto* dt = reinterpret_cast<const OptimTensor*>(dev);
  const auto* dc = reinterpret_cast<const Chunk*>(dev + tbytes);
  auto* dn = nonfinite != nullptr ? reinterpret_cast<unsigned long long*>(dev + tbytes + cbytes) : nullptr;
  detail::dispatch_float(plan.dtype, [&](auto tag) {
    using T = decltype(tag);
    detail::dispatch_optim_variant(plan, [&](auto variant) {
      const unsigned grid = static_cast<unsigned>(chunks.size());
      if (dn != nullptr) optim_step_kernel<decltype(variant), true, T><<<grid, kThreads, 0, stream()>>>(dt, dc, plan.s, dn);
      else optim_step_kernel<decltype(variant), false, T><<<grid, kThreads, 0, stream()>>>(dt, dc, plan.s, dn);
    });
  });
  check_launch();
  if (dn != nullptr) {
    std::vector<unsigned long long> counts(n);
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(counts.data(), dn, nbytes, cudaMemcpyDeviceToHost, stream()));
    SEISOKU_CUDA_CHECK(cudaStreamSynchronize(stream()));
    for (std::size_t i = 0; i < n; ++i) nonfinite[i] += static_cast<std::int64_t>(counts[i]);
  }
}

void optim_grad_check(const std::vector<Tensor>& grads, bool /*need_sumsq: always formed, the GPU is memory bound*/,
                      std::vector<double>& sumsq, std::vector<std::int64_t>& nonfinite) {
  std::vector<Range> ranges;
  std::vector<std::size_t> owner;
  block_ranges(grads, ranges, owner);
  if (ranges.empty()) return;
  DeviceGuard guard(grads[0].device_index());
  const std::int64_t count = static_cast<std::int64_t>(ranges.size());
  const std::size_t rbytes = align8(ranges.size() * sizeof(Range));
  std::vector<double> part(ranges.size());
  std::vector<long long> bad(ranges.size());
  {
    std::unique_lock<std::mutex> lock;
    auto* dev = static_cast<unsigned char*>(
        upload(grads[0].device_index(), ranges.data(), rbytes, 2 * ranges.size() * sizeof(double), lock));
    auto* dsum = reinterpret_cast<double*>(dev + rbytes);
    auto* dbad = reinterpret_cast<long long*>(dsum + ranges.size());
    detail::dispatch_float(grads[0].dtype(), [&](auto tag) {
      using T = decltype(tag);
      grad_check_kernel<T><<<warps_grid(count), kThreads, 0, stream()>>>(reinterpret_cast<const Range*>(dev), count,
                                                                          dsum, dbad);
    });
    check_launch();
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(part.data(), dsum, part.size() * sizeof(double), cudaMemcpyDeviceToHost, stream()));
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(bad.data(), dbad, bad.size() * sizeof(long long), cudaMemcpyDeviceToHost, stream()));
    SEISOKU_CUDA_CHECK(cudaStreamSynchronize(stream()));
  }
  for (std::size_t k = 0; k < ranges.size(); ++k) {
    sumsq[owner[k]] += part[k];
    nonfinite[owner[k]] += bad[k];
  }
}

void optim_stats(const std::vector<Tensor>& params, std::vector<double>& abs_sum, std::vector<double>& sq_sum,
                 std::vector<std::int64_t>& nonzero) {
  std::vector<Range> ranges;
  std::vector<std::size_t> owner;
  block_ranges(params, ranges, owner);
  if (ranges.empty()) return;
  DeviceGuard guard(params[0].device_index());
  const std::int64_t count = static_cast<std::int64_t>(ranges.size());
  const std::size_t rbytes = align8(ranges.size() * sizeof(Range));
  std::vector<double> pa(ranges.size()), ps(ranges.size());
  std::vector<long long> pn(ranges.size());
  {
    std::unique_lock<std::mutex> lock;
    auto* dev = static_cast<unsigned char*>(
        upload(params[0].device_index(), ranges.data(), rbytes, 3 * ranges.size() * sizeof(double), lock));
    auto* da = reinterpret_cast<double*>(dev + rbytes);
    auto* ds = da + ranges.size();
    auto* dn = reinterpret_cast<long long*>(ds + ranges.size());
    detail::dispatch_float(params[0].dtype(), [&](auto tag) {
      using T = decltype(tag);
      stats_kernel<T><<<warps_grid(count), kThreads, 0, stream()>>>(reinterpret_cast<const Range*>(dev), count, da, ds,
                                                                     dn);
    });
    check_launch();
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(pa.data(), da, pa.size() * sizeof(double), cudaMemcpyDeviceToHost, stream()));
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(ps.data(), ds, ps.size() * sizeof(double), cudaMemcpyDeviceToHost, stream()));
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(pn.data(), dn, pn.size() * sizeof(long long), cudaMemcpyDeviceToHost, stream()));
    SEISOKU_CUDA_CHECK(cudaStreamSynchronize(stream()));
  }
  for (std::size_t k = 0; k < ranges.size(); ++k) {
    abs_sum[owner[k]] += pa[k];
    sq_sum[owner[k]] += ps[k];
    nonzero[owner[k]] += pn[k];
  }
}

void max_norm_project(const Tensor& w, double max_norm, std::int64_t outer, std::int64_t units, std::int64_t inner) {
  DeviceGuard guard(w.device_index());
  detail::dispatch_float(w.dtype(), [&](auto tag) {
    using T = decltype(tag);
    max_norm_kernel<T><<<warps_grid(units), kThreads, 0, stream()>>>(w.data_as<T>(), max_norm, outer, units, inner);
  });
  check_launch();
}

}  // namespace seisoku::gpu
