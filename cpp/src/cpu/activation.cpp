// CPU kernels of activations (elementwise, OpenMP over flat ranges) and softmax (rows in
// parallel, float64 sums in column order within a row).
#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/dispatch.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {

using detail::dispatch_float;

void activation(const Tensor& x, const Tensor& out, Activation act, double slope) {
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data_as<T>();
    T* o = out.data_as<T>();
    const T s = static_cast<T>(slope);
    detail::dispatch_activation(act, [&](auto a) {
      constexpr Activation A = decltype(a)::value;
      parallel_for(x.numel(), [=](std::int64_t i0, std::int64_t i1) {
        const T sl = s;  // a local: stores through T* could alias the closure's copy
        for (std::int64_t i = i0; i < i1; ++i) o[i] = detail::act_forward(xs[i], A, sl);
      });
    });
  });
}

void activation_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in, Activation act,
                         double slope) {
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = grad_out.data_as<T>();
    const T* ys = y.data_as<T>();
    T* gi = grad_in.data_as<T>();
    const T s = static_cast<T>(slope);
    detail::dispatch_activation(act, [&](auto a) {
      constexpr Activation A = decltype(a)::value;
      parallel_for(y.numel(), [=](std::int64_t i0, std::int64_t i1) {
        const T sl = s;  // a local: see activation
        for (std::int64_t i = i0; i < i1; ++i) gi[i] = g[i] * detail::act_derivative(ys[i], A, sl);
      });
    });
  });
}

namespace {
template <class F>
void for_rows(const Tensor& x, F&& f) {
  const std::int64_t cols = x.dim() == 0 ? 1 : x.shape().back();
  const std::int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  parallel_for(
      rows, [&](std::int64_t r0, std::int64_t r1) { for (std::int64_t r = r0; r < r1; ++r) f(r * cols, cols); },
      std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(cols, 1)));
}
}  // namespace

void softmax(const Tensor& x, const Tensor& out) {
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data_as<T>();
    T* o = out.data_as<T>();
    for_rows(x, [=](std::int64_t base, std::int64_t cols) {
      T m = -std::numeric_limits<T>::infinity();
      for (std::int64_t j = 0; j < cols; ++j) m = xs[base + j] > m ? xs[base + j] : m;
      double total = 0.0;
      for (std::int64_t j = 0; j < cols; ++j) {
        const T e = detail::exp_(xs[base + j] - m);
        o[base + j] = e;
        total += static_cast<double>(e);
      }
      const T inv = static_cast<T>(1.0 / total);
      for (std::int64_t j = 0; j < cols; ++j) o[base + j] *= inv;
    });
  });
}

void softmax_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_in) {
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = grad_out.data_as<T>();
    const T* ys = y.data_as<T>();
    T* gi = grad_in.data_as<T>();
    for_rows(y, [=](std::int64_t base, std::int64_t cols) {
      double dot = 0.0;
      for (std::int64_t j = 0; j < cols; ++j) dot += static_cast<double>(g[base + j]) * static_cast<double>(ys[base + j]);
      const T d = static_cast<T>(dot);
      for (std::int64_t j = 0; j < cols; ++j) gi[base + j] = ys[base + j] * (g[base + j] - d);
    });
  });
}

}  // namespace seisoku::cpu
