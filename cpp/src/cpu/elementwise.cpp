// CPU kernels of the elementwise ops: flat loops over contiguous memory that the compiler
// vectorizes, split across OpenMP threads above kParallelGrain elements.
#include <cstdint>

#include "core/dispatch.hpp"
#include "kernels/core.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {

using detail::convert;
using detail::dispatch_all;
using detail::dispatch_float;

namespace {
// out[i] = op(a[i], b[i]) over float32 / float64.
template <class Op>
void binary(const Tensor& a, const Tensor& b, const Tensor& out, Op op) {
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data_as<T>();
    const T* y = b.data_as<T>();
    T* z = out.data_as<T>();
    parallel_for(out.numel(), [=](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) z[i] = op(x[i], y[i]);
    });
  });
}
}  // namespace

void add(const Tensor& a, const Tensor& b, const Tensor& out) {
  binary(a, b, out, [](auto x, auto y) { return x + y; });
}

void mul(const Tensor& a, const Tensor& b, const Tensor& out) {
  binary(a, b, out, [](auto x, auto y) { return x * y; });
}

void axpy(double alpha, const Tensor& x, const Tensor& y) {
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(alpha);
    const T* xs = x.data_as<T>();
    T* ys = y.data_as<T>();
    parallel_for(y.numel(), [=](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) ys[i] += al * xs[i];
    });
  });
}

void axpy_sign(double alpha, const Tensor& x, const Tensor& y) {
  dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(alpha);
    const T* xs = x.data_as<T>();
    T* ys = y.data_as<T>();
    parallel_for(y.numel(), [=](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) ys[i] += al * detail::sign(xs[i]);
    });
  });
}

void scale(double alpha, const Tensor& x, const Tensor& out) {
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(alpha);
    const T* xs = x.data_as<T>();
    T* z = out.data_as<T>();
    parallel_for(out.numel(), [=](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) z[i] = al * xs[i];
    });
  });
}

void fill(const Tensor& out, double value) {
  dispatch_all(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = convert<T>(value);
    T* z = out.data_as<T>();
    parallel_for(out.numel(), [=](std::int64_t i0, std::int64_t i1) {
      for (std::int64_t i = i0; i < i1; ++i) z[i] = v;
    });
  });
}

void copy(const Tensor& src, const Tensor& dst) {
  dispatch_all(src.dtype(), [&](auto stag) {
    using S = decltype(stag);
    dispatch_all(dst.dtype(), [&](auto dtag) {
      using D = decltype(dtag);
      const S* s = src.data_as<S>();
      D* d = dst.data_as<D>();
      if (static_cast<const void*>(s) == static_cast<void*>(d) && std::is_same_v<S, D>) return;
      parallel_for(dst.numel(), [=](std::int64_t i0, std::int64_t i1) {
        for (std::int64_t i = i0; i < i1; ++i) d[i] = convert<D>(s[i]);
      });
    });
  });
}

}  // namespace seisoku::cpu
