// CPU kernels of the reductions. Each block of kReduceBlock elements is reduced with 8
// independent float64 lanes (vectorizable, fixed order); blocks combine in order, so the
// result is the same for any thread count.
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/dispatch.hpp"
#include "kernels/core.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {
namespace {

using detail::dispatch_float;

enum class Kind { sum, abs_sum, sq_sum, nonzero, max, abs_max };

// A reduction value: the float64 total, and whether a NaN was seen (for max reductions).
struct Part {
  double v;
  bool nan;
};

constexpr double identity(Kind k) {
  return (k == Kind::max) ? -std::numeric_limits<double>::infinity() : (k == Kind::abs_max ? 0.0 : 0.0);
}

template <Kind K, class T>
Part partial(const T* x, std::int64_t b, std::int64_t e) {
  constexpr int L = 8;
  if constexpr (K == Kind::max || K == Kind::abs_max) {
    T m[L];
    bool nan = false;
    for (int k = 0; k < L; ++k) m[k] = K == Kind::max ? -std::numeric_limits<T>::infinity() : T(0);
    std::int64_t i = b;
    for (; i + L <= e; i += L)
      for (int k = 0; k < L; ++k) {
        const T v = K == Kind::abs_max ? std::fabs(x[i + k]) : x[i + k];
        nan |= v != v;
        m[k] = v > m[k] ? v : m[k];
      }
    for (; i < e; ++i) {
      const T v = K == Kind::abs_max ? std::fabs(x[i]) : x[i];
      nan |= v != v;
      m[0] = v > m[0] ? v : m[0];
    }
    T r = m[0];
    for (int k = 1; k < L; ++k) r = m[k] > r ? m[k] : r;
    return {static_cast<double>(r), nan};
  } else {
    double acc[L] = {};
    auto term = [](T v) -> double {
      if constexpr (K == Kind::sum) return static_cast<double>(v);
      else if constexpr (K == Kind::abs_sum) return std::fabs(static_cast<double>(v));
      else if constexpr (K == Kind::sq_sum) return static_cast<double>(v) * static_cast<double>(v);
      else return v != T(0) ? 1.0 : 0.0;
    };
    std::int64_t i = b;
    for (; i + L <= e; i += L)
      for (int k = 0; k < L; ++k) acc[k] += term(x[i + k]);
    for (; i < e; ++i) acc[0] += term(x[i]);
    return {((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])), false};
  }
}

template <Kind K>
Part combine(Part a, Part b) {
  if constexpr (K == Kind::max || K == Kind::abs_max) return {b.v > a.v ? b.v : a.v, a.nan || b.nan};
  else return {a.v + b.v, false};
}

template <Kind K>
double finish(Part p) {
  if (p.nan) return std::numeric_limits<double>::quiet_NaN();
  return K == Kind::sq_sum ? std::sqrt(p.v) : p.v;
}

// Parallel over blocks of one range.
template <Kind K, class T>
double reduce_range(const T* x, std::int64_t n) {
  const Part p = block_reduce(
      n, Part{identity(K), false}, [x](std::int64_t b, std::int64_t e) { return partial<K>(x, b, e); }, combine<K>);
  return finish<K>(p);
}

// The same blocks and order as reduce_range, on the calling thread.
template <Kind K, class T>
double reduce_range_serial(const T* x, std::int64_t n) {
  Part acc{identity(K), false};
  for (std::int64_t b = 0; b < n; b += kReduceBlock) acc = combine<K>(acc, partial<K>(x, b, std::min(n, b + kReduceBlock)));
  return finish<K>(acc);
}

template <class F>
void with_kind(double ord, F&& f) {
  if (ord == 0) f(std::integral_constant<Kind, Kind::nonzero>{});
  else if (ord == 1) f(std::integral_constant<Kind, Kind::abs_sum>{});
  else if (ord == 2) f(std::integral_constant<Kind, Kind::sq_sum>{});
  else f(std::integral_constant<Kind, Kind::abs_max>{});
}

template <Kind K>
void reduce_all(const Tensor& x, const Tensor& out, double divide_by = 1.0) {
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    *out.data_as<T>() = static_cast<T>(reduce_range<K>(x.data_as<T>(), x.numel()) / divide_by);
  });
}

}  // namespace

void sum(const Tensor& x, const Tensor& out) { reduce_all<Kind::sum>(x, out); }

void mean(const Tensor& x, const Tensor& out) { reduce_all<Kind::sum>(x, out, static_cast<double>(x.numel())); }

void max(const Tensor& x, const Tensor& out) { reduce_all<Kind::max>(x, out); }

void norm(const Tensor& x, double ord, const Tensor& out) {
  with_kind(ord, [&](auto kind) { reduce_all<decltype(kind)::value>(x, out); });
}

void row_norm(const Tensor& x, double ord, const Tensor& out) {
  const std::int64_t rows = x.shape()[0];
  const std::int64_t cols = rows == 0 ? 0 : x.numel() / rows;
  with_kind(ord, [&](auto kind) {
    constexpr Kind K = decltype(kind)::value;
    dispatch_float(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* xs = x.data_as<T>();
      T* o = out.data_as<T>();
      parallel_for(
          rows,
          [=](std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r) o[r] = static_cast<T>(reduce_range_serial<K>(xs + r * cols, cols));
          },
          /*grain=*/std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(cols, 1)));
    });
  });
}

void column_sum(const Tensor& x, const Tensor& out, bool accumulate) {
  const std::int64_t rows = x.shape()[0], cols = x.shape()[1];
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data_as<T>();
    T* o = out.data_as<T>();
    // Columns split across threads in chunks; each column adds its rows in order. Below
    // kSerialWork elements (some 25 us on one thread) the calling thread sums them alone:
    // waking sleeping workers (OMP_WAIT_POLICY=PASSIVE) costs about as much.
    constexpr std::int64_t kChunk = 256;
    constexpr std::int64_t kSerialWork = std::int64_t{1} << 18;
    const std::int64_t chunks = (cols + kChunk - 1) / kChunk;
    parallel_for(
        chunks,
        [=](std::int64_t c0, std::int64_t c1) {
          double acc[kChunk];
          for (std::int64_t c = c0; c < c1; ++c) {
            const std::int64_t j0 = c * kChunk, j1 = std::min(cols, j0 + kChunk);
            for (std::int64_t j = j0; j < j1; ++j) acc[j - j0] = accumulate ? static_cast<double>(o[j]) : 0.0;
            for (std::int64_t r = 0; r < rows; ++r) {
              const T* row = xs + r * cols;
              for (std::int64_t j = j0; j < j1; ++j) acc[j - j0] += static_cast<double>(row[j]);
            }
            for (std::int64_t j = j0; j < j1; ++j) o[j] = static_cast<T>(acc[j - j0]);
          }
        },
        /*grain=*/std::max<std::int64_t>(1, kSerialWork / std::max<std::int64_t>(rows * kChunk, 1)));
  });
}

}  // namespace seisoku::cpu
