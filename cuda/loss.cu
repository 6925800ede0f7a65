// CUDA twins of the loss family (cpp/src/cpu/loss.cpp). A group of G threads handles one
// sample row (G = 1 for rows of up to 16 elements, a warp up to 2048, else the whole block
// of kThreads), with grid-stride loops over rows; group reductions are xor-butterflies (every
// lane ends with the same bits) plus, for whole blocks, an ordered pass over the warp
// partials. Each row writes its float64 loss into a workspace and its gradient row already
// scaled by w_i / sum(w). The batch sums (sum(w) first when weights are given, then
// sum_i w_i l_i) use a fixed grid of up to 1024 blocks of float64 partials followed by one
// block that combines them in index order: no atomics, and the result depends only on the
// shapes. G depends only on the row length. Elementwise math runs in the input dtype, sums in
// float64. An out-of-range class index makes that row's loss and gradient NaN (so the mean
// loss is NaN); nothing is read or written out of bounds.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/loss.hpp"

namespace seisoku::gpu {
namespace {

constexpr int kMaxParts = 1024;

__device__ __forceinline__ float dexp(float x) { return expf(x); }
__device__ __forceinline__ double dexp(double x) { return exp(x); }
__device__ __forceinline__ float dlog1p(float x) { return log1pf(x); }
__device__ __forceinline__ double dlog1p(double x) { return log1p(x); }

template <class V>
__device__ __forceinline__ V vmax(V a, V b) {
  return (a > b || a != a) ? a : b;
}

struct Sum {
  template <class V>
  __device__ __forceinline__ V operator()(V a, V b) const { return a + b; }
};
struct Max {
  template <class V>
  __device__ __forceinline__ V operator()(V a, V b) const { return vmax(a, b); }
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
  return w == nullptr ? inv_n : static_cast<double>(w[r]) * (1.0 / *wsum);
}

template <int G, class T, class I>
__global__ void cross_entropy_kernel(const T* logits, const I* target, const T* w, const double* wsum, double inv_n,
                                     std::int64_t n, std::int64_t k, double q_true, double q_other, T* grad,
                                     T* per_sample, double* row_loss) {
  const RowLoop<G> loop;
  for (std::int64_t r = loop.first; r < n; r += loop.stride) {
    const T* x = logits + r * k;
    const std::int64_t y = static_cast<std::int64_t>(target[r]);
    const bool bad = y < 0 || y >= k;
    T m = -INFINITY;
    for (std::int64_t j = loop.lane; j < k; j += G) m = vmax(m, x[j]);
    m = group_all<G>(m, Max{});
    double s = 0.0, sz = 0.0;
    for (std::int64_t j = loop.lane; j < k; j += G) {
      const T z = x[j] - m;
      s += static_cast<double>(dexp(z));
      sz += static_cast<double>(z);
    }
    s = group_all<G>(s, Sum{});
    if (q_other != 0.0) sz = group_all<G>(sz, Sum{});
    if (grad != nullptr) {
      T* g = grad + r * k;
      const double c = grad_factor(w, wsum, inv_n, r), inv_s = 1.0 / s;
      for (std::int64_t j = loop.lane; j < k; j += G) {
        const double p = static_cast<double>(dexp(static_cast<T>(x[j] - m))) * inv_s;
        g[j] = bad ? static_cast<T>(NAN) : static_cast<T>((p - (j == y ? q_true : q_other)) * c);
      }
    }
    if (loop.lane == 0) {
      double l = NAN;
      if (!bad) {
        const double zy = static_cast<double>(x[y] - m);
        l = log(s) - (q_true - q_other) * zy - (q_other != 0.0 ? q_other * sz : 0.0);
      }
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
    const double c = (Bce ? 1.0 : 2.0) * inv_d * grad_factor(w, wsum, inv_n, r);
    double s = 0.0;
    for (std::int64_t j = loop.lane; j < d; j += G) {
      if constexpr (Bce) {
        const T xv = x[j], tv = t[j];
        const T e = dexp(-fabs(xv));
        s += static_cast<double>((xv > T(0) ? xv : T(0)) - xv * tv) + static_cast<double>(dlog1p(e));
        if (g != nullptr) {
          const T sig = xv >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
          g[j] = static_cast<T>(c * (static_cast<double>(sig) - static_cast<double>(tv)));
        }
      } else {
        const double e = static_cast<double>(x[j]) - static_cast<double>(t[j]);
        s += e * e;
        if (g != nullptr) g[j] = static_cast<T>(c * e);
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
__global__ void kl_div_softened_kernel(const T* ss, const T* ts, T inv_t, double loss_factor, double grad_scale,
                                       const T* w, const double* wsum, double inv_n, std::int64_t n, std::int64_t k,
                                       T* grad, T* per_sample, double* row_loss) {
  const RowLoop<G> loop;
  for (std::int64_t r = loop.first; r < n; r += loop.stride) {
    const T* s = ss + r * k;
    const T* t = ts + r * k;
    T ma = -INFINITY, mb = -INFINITY;
    for (std::int64_t j = loop.lane; j < k; j += G) {
      ma = vmax(ma, static_cast<T>(s[j] * inv_t));
      mb = vmax(mb, static_cast<T>(t[j] * inv_t));
    }
    ma = group_all<G>(ma, Max{});
    mb = group_all<G>(mb, Max{});
    double sa = 0.0, sb = 0.0;
    for (std::int64_t j = loop.lane; j < k; j += G) {
      sa += static_cast<double>(dexp(static_cast<T>(s[j] * inv_t - ma)));
      sb += static_cast<double>(dexp(static_cast<T>(t[j] * inv_t - mb)));
    }
    sa = group_all<G>(sa, Sum{});
    sb = group_all<G>(sb, Sum{});
    const double lsa = log(sa), lsb = log(sb);
    const double shift = (static_cast<double>(ma) + lsa) - (static_cast<double>(mb) + lsb);
    T* g = grad == nullptr ? nullptr : grad + r * k;
    const double c = grad_scale * grad_factor(w, wsum, inv_n, r);
    double kl = 0.0;
    for (std::int64_t j = loop.lane; j < k; j += G) {
      const T a = s[j] * inv_t, b = t[j] * inv_t;
      const double pt = exp(static_cast<double>(b - mb) - lsb);
      if (pt != 0.0) kl += pt * (static_cast<double>(b - a) + shift);
      if (g != nullptr) g[j] = static_cast<T>(c * (exp(static_cast<double>(a - ma) - lsa) - pt));
    }
    kl = group_all<G>(kl, Sum{});
    if (loop.lane == 0) {
      row_loss[r] = kl * loss_factor;
      if (per_sample != nullptr) per_sample[r] = static_cast<T>(kl * loss_factor);
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
    if (rows == nullptr) acc += wi;
    else if (wi != 0.0) acc += wi * rows[i];
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

// Stream-ordered float64 scratch memory, freed on the stream when it goes out of scope.
class Scratch {
 public:
  explicit Scratch(std::size_t count) {
    SEISOKU_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), sizeof(double) * count, stream()));
  }
  ~Scratch() { cudaFreeAsync(p_, stream()); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  double* get() const { return p_; }

 private:
  double* p_ = nullptr;
};

// Batch driver: sum(w) when weighted, then launch_rows(w, wsum, inv_n, row_loss) for the
// row kernel, then loss = sum_i w_i row_loss_i / sum(w).
template <class T, class LaunchRows>
void reduce_rows(std::int64_t n, const Tensor& weight, const Tensor& loss, LaunchRows&& launch_rows) {
  const T* w = weight.numel() != 0 ? weight.data_as<T>() : nullptr;
  Scratch scratch(static_cast<std::size_t>(n) + kMaxParts + 1);
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

template <class T, class I>
void cross_entropy_impl(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                        const Tensor& grad, const Tensor& per_sample, double q_true, double q_other) {
  const std::int64_t n = logits.shape()[0], k = logits.shape()[1];
  reduce_rows<T>(n, weight, loss, [&](const T* w, const double* wsum, double inv_n, double* rows) {
    with_group(k, [&](auto group) {
      constexpr int G = decltype(group)::value;
      cross_entropy_kernel<G, T, I><<<row_grid<G>(n), kThreads, 0, stream()>>>(
          logits.data_as<T>(), target.data_as<I>(), w, wsum, inv_n, n, k, q_true, q_other, opt<T>(grad),
          opt<T>(per_sample), rows);
    });
  });
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

void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                   const Tensor& grad, const Tensor& per_sample, double q_true, double q_other) {
  DeviceGuard guard(logits.device_index());
  detail::dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (target.dtype() == DType::int64)
      cross_entropy_impl<T, std::int64_t>(logits, target, weight, loss, grad, per_sample, q_true, q_other);
    else
      cross_entropy_impl<T, std::int32_t>(logits, target, weight, loss, grad, per_sample, q_true, q_other);
  });
}

void mse(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss, const Tensor& grad,
         const Tensor& per_sample) {
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
  const double loss_factor = scale_t2 ? temperature * temperature : 1.0;
  const double grad_scale = scale_t2 ? temperature : 1.0 / temperature;
  DeviceGuard guard(student_logits.device_index());
  detail::dispatch_float(student_logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    reduce_rows<T>(n, weight, loss, [&](const T* w, const double* wsum, double inv_n, double* rows) {
      with_group(k, [&](auto group) {
        constexpr int G = decltype(group)::value;
        kl_div_softened_kernel<G, T><<<row_grid<G>(n), kThreads, 0, stream()>>>(
            student_logits.data_as<T>(), teacher_logits.data_as<T>(), static_cast<T>(1.0 / temperature), loss_factor,
            grad_scale, w, wsum, inv_n, n, k, opt<T>(grad), opt<T>(per_sample), rows);
      });
    });
  });
}

}  // namespace seisoku::gpu
