// CUDA twins of the loss family (cpp/src/cpu/loss.cpp). A group of G threads handles one
// sample row (G = 1 for rows of up to 16 elements, a warp up to 2048, else the whole block
// of kThreads), with grid-stride loops over rows; group reductions are xor-butterflies (every
// lane ends with the same bits) plus, for whole blocks, an ordered pass over the warp
// partials. Each row writes its float64 loss into a workspace and its gradient row already
// scaled by w_i / sum(w). The batch sums (sum(w) first when weights are given, then
// sum_i w_i l_i) use a fixed grid of up to 1024 blocks of float64 partials followed by one
// block that combines them in index order: no atomics, and the result depends only on the
// shapes. G depends only on the row length. Elementwise math runs in the input dtype, sums in
// float64; the formulas are those of kernels/loss_math.hpp, shared with the CPU kernels. An
// out-of-range class index makes that row's loss and gradient NaN without any access out of
// bounds, and lowers a device word to the smallest such row (atomicMin); cross_entropy copies
// that word back (8 bytes, waiting for the kernels) and returns it to the front-end.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/loss.hpp"
#include "kernels/loss_math.hpp"

namespace seisoku::gpu {
namespace {

constexpr int kMaxParts = 1024;

using detail::exp_;
using detail::max_nan;

struct Sum {
  template <class V>
  __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};
struct Max {
  template <class V>
  __device__ __forceinline__ V operator()(V a, V b) const { return max_nan(a, b); }
};

template <class V, class Op>
__device__ __forceinline__ V warp_all(V v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// All-reduce over the G threads of a group; every thread of the group gets the same value.
// G == kThreads must be reached by the whole block.
template <int G, class V, class Op>
__device__ __forceinline__ V group_all(V v, Op op) {
  if constexpr (G == 1) {
    return v;
  } else if constexpr (G == 32) {
    return warp_all(v, op);
  } else {
    static_assert(G == kThreads, "a group is 1 thread, a warp or the block");
    __shared__ V part[kThreads / 32];
    v = warp_all(v, op);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    V r = part[0];
    for (int i = 1; i < kThreads / 32; ++i) r = op(r, part[i]);
    __syncthreads();
    return r;
  }
}

template <class F>
void with_group(std::int64_t cols, F&& f) {
  if (cols <= 16) f(std::integral_constant<int, 1>{});
  else if (cols <= 2048) f(std::integral_constant<int, 32>{});
  else f(std::integral_constant<int, kThreads>{});
}

template <int G>
unsigned row_grid(std::int64_t n) {
  constexpr int rows_per_block = kThreads / G;
  return static_cast<unsigned>(std::clamp<std::int64_t>((n + rows_per_block - 1) / rows_per_block, 1, 65536));
}

// Where a row kernel is: its group's lane, and the first row and row stride of its group.
template <int G>
struct RowLoop {
  int lane;
  std::int64_t first, stride;
  __device__ RowLoop()
      : lane(static_cast<int>(threadIdx.x) % G),
        first(std::int64_t{blockIdx.x} * (kThreads / G) + threadIdx.x / G),
        stride(std::int64_t{gridDim.x} * (kThreads / G)) {}
};

// The gradient factor w_r / sum(w) of row r.
template <class T>
__device__ __forceinline__ double grad_factor(const T* w, const double* wsum, double inv_n, std::int64_t r) {
  return detail::sample_factor(w, r, w == nullptr ? inv_n : 1.0 / *wsum);
}

template <int G, class T, class I>
__global__ void cross_entropy_kernel(const T* logits, const I* target, const T* w, const double* wsum, double inv_n,
                                     std::int64_t n, std::int64_t k, detail::SmoothedTarget q, T* grad,
                                     T* per_sample, double* row_loss, unsigned long long* bad_row) {
  const RowLoop<G> loop;
  for (std::int64_t r = loop.first; r < n; r += loop.stride) {
    const T* x = logits + r * k;
    const std::int64_t y = static_cast<std::int64_t>(target[r]);
    const bool bad = !detail::is_class(y, k);
    T m = -INFINITY;
    for (std::int64_t j = loop.lane; j < k; j += G) m = max_nan(m, x[j]);
    m = group_all<G>(m, Max{});
    double s = 0.0, sz = 0.0;
    for (std::int64_t j = loop.lane; j < k; j += G) {
      const T z = x[j] - m;
      s += static_cast<double>(exp_(z));
      sz += static_cast<double>(z);
    }
    s = group_all<G>(s, Sum{});
    if (q.q_other != 0.0) sz = group_all<G>(sz, Sum{});
    if (grad != nullptr) {
      T* g = grad + r * k;
      const double c = grad_factor(w, wsum, inv_n, r), inv_s = 1.0 / s;
      for (std::int64_t j = loop.lane; j < k; j += G)
        g[j] = bad ? static_cast<T>(NAN)
                   : detail::cross_entropy_grad(exp_(static_cast<T>(x[j] - m)), inv_s,
                                                j == y ? q.q_true : q.q_other, c);
    }
    if (loop.lane == 0) {
      double l = NAN;
      if (bad) atomicMin(bad_row, static_cast<unsigned long long>(r));
      else l = detail::cross_entropy_row(s, sz, static_cast<double>(x[y] - m), q);
      row_loss[r] = l;
      if (per_sample != nullptr) per_sample[r] = static_cast<T>(l);
    }
  }
}

template <int G, bool Bce, class T>
__global__ void elementwise_loss_kernel(const T* xs, const T* ts, const T* w, const double* wsum, double inv_n,
                                        std::int64_t n, std::int64_t d, T* grad, T* per_sample, double* row_loss) {
  const RowLoop<G> loop;
  const double inv_d = 1.0 / static_cast<double>(d);
  for (std::int64_t r = loop.first; r < n; r += loop.stride) {
    const T* x = xs + r * d;
    const T* t = ts + r * d;
    T* g = grad == nullptr ? nullptr : grad + r * d;
    const double cr = grad_factor(w, wsum, inv_n, r);
    const double c = Bce ? detail::bce_with_logits_grad_factor(inv_d, cr) : detail::mse_grad_factor(inv_d, cr);
    double s = 0.0;
    for (std::int64_t j = loop.lane; j < d; j += G) {
      if constexpr (Bce) {
        const detail::BceTerm<T> term = detail::bce_with_logits_term(x[j], t[j]);
        s += term.loss;
        if (g != nullptr) g[j] = detail::bce_with_logits_grad(term.sigmoid, t[j], c);
      } else {
        const double e = detail::mse_error(x[j], t[j]);
        s += e * e;
        if (g != nullptr) g[j] = detail::mse_grad<T>(e, c);
      }
    }
    s = group_all<G>(s, Sum{});
    if (loop.lane == 0) {
      row_loss[r] = s * inv_d;
      if (per_sample != nullptr) per_sample[r] = static_cast<T>(s * inv_d);
    }
  }
}

template <int G, class T>
__global__ void kl_div_softened_kernel(const T* ss, const T* ts, T inv_t, detail::SoftenedScale scale, const T* w,
                                       const double* wsum, double inv_n, std::int64_t n, std::int64_t k, T* grad,
                                       T* per_sample, double* row_loss) {
  const RowLoop<G> loop;
  for (std::int64_t r = loop.first; r < n; r += loop.stride) {
    const T* s = ss + r * k;
    const T* t = ts + r * k;
    T ma = -INFINITY, mb = -INFINITY;
    for (std::int64_t j = loop.lane; j < k; j += G) {
      ma = max_nan(ma, static_cast<T>(s[j] * inv_t));
      mb = max_nan(mb, static_cast<T>(t[j] * inv_t));
    }
    ma = group_all<G>(ma, Max{});
    mb = group_all<G>(mb, Max{});
    double sa = 0.0, sb = 0.0;
    for (std::int64_t j = loop.lane; j < k; j += G) {
      sa += static_cast<double>(exp_(static_cast<T>(s[j] * inv_t - ma)));
      sb += static_cast<double>(exp_(static_cast<T>(t[j] * inv_t - mb)));
    }
    sa = group_all<G>(sa, Sum{});
    sb = group_all<G>(sb, Sum{});
    const detail::SoftenedRow<T> row = detail::softened_row(ma, mb, sa, sb);
    T* g = grad == nullptr ? nullptr : grad + r * k;
    const double c = scale.grad * grad_factor(w, wsum, inv_n, r);
    double kl = 0.0;
    for (std::int64_t j = loop.lane; j < k; j += G) {
      const T a = s[j] * inv_t, b = t[j] * inv_t;
      const double pt = detail::softened_prob(b, mb, row.lsb);
      kl += detail::kl_term(row, a, b, pt);
      if (g != nullptr) g[j] = detail::kl_grad(row, a, pt, c);
    }
    kl = group_all<G>(kl, Sum{});
    if (loop.lane == 0) {
      row_loss[r] = kl * scale.loss;
      if (per_sample != nullptr) per_sample[r] = static_cast<T>(kl * scale.loss);
    }
  }
}

// parts[block] = float64 partial over a strided slice of: w_i (rows == nullptr) or
// w_i * rows_i (w == nullptr: weight 1; a zero weight skips its row).
template <class T>
__global__ void partial_kernel(const double* rows, const T* w, std::int64_t n, double* parts) {
  double acc = 0.0;
  const std::int64_t stride = std::int64_t{gridDim.x} * kThreads;
  for (std::int64_t i = blockIdx.x * std::int64_t{kThreads} + threadIdx.x; i < n; i += stride) {
    const double wi = w == nullptr ? 1.0 : static_cast<double>(w[i]);
    acc += rows == nullptr ? wi : detail::weighted_loss(wi, rows[i]);
  }
  acc = group_all<kThreads>(acc, Sum{});
  if (threadIdx.x == 0) parts[blockIdx.x] = acc;
}

// Sum of parts[0, count) in index order, divided by *divisor (if given) or by divisor_host;
// written to out_double or out.
template <class T>
__global__ void finish_kernel(const double* parts, int count, const double* divisor, double divisor_host,
                              double* out_double, T* out) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += kThreads) acc += parts[i];
  acc = group_all<kThreads>(acc, Sum{});
  if (threadIdx.x == 0) {
    const double v = acc / (divisor != nullptr ? *divisor : divisor_host);
    if (out_double != nullptr) *out_double = v;
    else *out = static_cast<T>(v);
  }
}

// Stream-ordered scratch memory of `count` V, freed on the stream when it goes out of scope.
template <class V = double>
class Scratch {
 public:
  explicit Scratch(std::size_t count) {
    SEISOKU_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), sizeof(V) * count, stream()));
  }
  ~Scratch() { cudaFreeAsync(p_, stream()); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  V* get() const { return p_; }

 private:
  V* p_ = nullptr;
};

// Batch driver: sum(w) when weighted, then launch_rows(w, wsum, inv_n, row_loss) for the
// row kernel, then loss = sum_i w_i row_loss_i / sum(w).
template <class T, class LaunchRows>
void reduce_rows(std::int64_t n, const Tensor& weight, const Tensor& loss, LaunchRows&& launch_rows) {
  const T* w = weight.numel() != 0 ? weight.data_as<T>() : nullptr;
  Scratch<> scratch(static_cast<std::size_t>(n) + kMaxParts + 1);
  double* rows = scratch.get();
  double* parts = rows + n;
  double* wsum = w == nullptr ? nullptr : parts + kMaxParts;
  const int blocks = static_cast<int>(std::clamp<std::int64_t>((n + kThreads * 8 - 1) / (kThreads * 8), 1, kMaxParts));
  if (w != nullptr) {
    partial_kernel<T><<<blocks, kThreads, 0, stream()>>>(nullptr, w, n, parts);
    finish_kernel<T><<<1, kThreads, 0, stream()>>>(parts, blocks, nullptr, 1.0, wsum, nullptr);
    check_launch();
  }
  launch_rows(w, wsum, 1.0 / static_cast<double>(n), rows);
  check_launch();
  partial_kernel<T><<<blocks, kThreads, 0, stream()>>>(rows, w, n, parts);
  finish_kernel<T><<<1, kThreads, 0, stream()>>>(parts, blocks, wsum, static_cast<double>(n), nullptr,
                                                 loss.data_as<T>());
  check_launch();
}

template <class T>
T* opt(const Tensor& t) {
  return t.numel() != 0 ? t.data_as<T>() : nullptr;
}

// Runs the kernels and returns the smallest row with a target outside [0, k), or -1: the
// kernel lowers a device word (all ones when no row is bad), copied back at the end.
template <class T, class I>
std::int64_t cross_entropy_impl(const Tensor& logits, const Tensor& target, const Tensor& weight,
                                const Tensor& loss, const Tensor& grad, const Tensor& per_sample,
                                const detail::SmoothedTarget& q) {
  const std::int64_t n = logits.shape()[0], k = logits.shape()[1];
  Scratch<unsigned long long> bad_row(1);
  SEISOKU_CUDA_CHECK(cudaMemsetAsync(bad_row.get(), 0xff, sizeof(unsigned long long), stream()));
  reduce_rows<T>(n, weight, loss, [&](const T* w, const double* wsum, double inv_n, double* rows) {
    with_group(k, [&](auto group) {
      constexpr int G = decltype(group)::value;
      cross_entropy_kernel<G, T, I><<<row_grid<G>(n), kThreads, 0, stream()>>>(
          logits.data_as<T>(), target.data_as<I>(), w, wsum, inv_n, n, k, q, opt<T>(grad), opt<T>(per_sample), rows,
          bad_row.get());
    });
  });
  unsigned long long first = ~0ull;
  SEISOKU_CUDA_CHECK(cudaMemcpyAsync(&first, bad_row.get(), sizeof(first), cudaMemcpyDeviceToHost, stream()));
  SEISOKU_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return first < static_cast<unsigned long long>(n) ? static_cast<std::int64_t>(first) : -1;
}

template <bool Bce>
void elementwise_loss(const Tensor& x, const Tensor& target, const Tensor& weight, const Tensor& loss,
                      const Tensor& grad, const Tensor& per_sample) {
  const std::int64_t n = x.shape()[0], d = x.numel() / n;
  DeviceGuard guard(x.device_index());
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    reduce_rows<T>(n, weight, loss, [&](const T* w, const double* wsum, double inv_n, double* rows) {
      with_group(d, [&](auto group) {
        constexpr int G = decltype(group)::value;
        elementwise_loss_kernel<G, Bce, T><<<row_grid<G>(n), kThreads, 0, stream()>>>(
            x.data_as<T>(), target.data_as<T>(), w, wsum, inv_n, n, d, opt<T>(grad), opt<T>(per_sample), rows);
      });
    });
  });
}

}  // namespace

std::int64_t cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                           const Tensor& grad, const Tensor& per_sample, const detail::SmoothedTarget& q) {
  DeviceGuard guard(logits.device_index());
  std::int64_t bad = -1;
  detail::dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    bad = target.dtype() == DType::int64
              ? cross_entropy_impl<T, std::int64_t>(logits, target, weight, loss, grad, per_sample, q)
              : cross_entropy_impl<T, std::int32_t>(logits, target, weight, loss, grad, per_sample, q);
  });
  return bad;
}

void mse_loss(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss,
              const Tensor& grad, const Tensor& per_sample) {
  elementwise_loss<false>(pred, target, weight, loss, grad, per_sample);
}

void bce_with_logits(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                     const Tensor& grad, const Tensor& per_sample) {
  elementwise_loss<true>(logits, target, weight, loss, grad, per_sample);
}

void kl_div_softened(const Tensor& student_logits, const Tensor& teacher_logits, double temperature,
                     const Tensor& weight, const Tensor& loss, const Tensor& grad, const Tensor& per_sample,
                     bool scale_t2) {
  const std::int64_t n = student_logits.shape()[0], k = student_logits.shape()[1];
  const detail::SoftenedScale scale = detail::softened_scale(temperature, scale_t2);
  DeviceGuard guard(student_logits.device_index());
  detail::dispatch_float(student_logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    reduce_rows<T>(n, weight, loss, [&](const T* w, const double* wsum, double inv_n, double* rows) {
      with_group(k, [&](auto group) {
        constexpr int G = decltype(group)::value;
        kl_div_softened_kernel<G, T><<<row_grid<G>(n), kThreads, 0, stream()>>>(
            student_logits.data_as<T>(), teacher_logits.data_as<T>(), static_cast<T>(1.0 / temperature), scale, w,
            wsum, inv_n, n, k, opt<T>(grad), opt<T>(per_sample), rows);
      });
    });
  });
}

}  // namespace seisoku::gpu
