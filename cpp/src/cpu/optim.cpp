// CPU kernels of the optim family.
//
// optim_step: the tensors of a group are laid end to end and cut into one contiguous range of
// elements per thread, balanced by element count (not by tensor), inside one OpenMP parallel
// region; cuts fall on row boundaries of max-norm tensors and on multiples of 16 elements
// elsewhere. Each piece of a tensor is one flat loop the compiler vectorizes (optim_element,
// shared with the CUDA twin). A max-norm row is updated, its squared norm summed while the row is
// still in L1/L2 and, when over the bound, rescaled there: one pass over memory. The fused
// non-finite check costs no pass of its own: in the same loop, each element's new values are
// kept only when its gradient is finite (a bitwise blend with the old values, see detail::put)
// and a flag records any other; the count comes from a second look at a range only when the flag
// is set. A max-norm row's gradient is scanned (an integer test of the magnitude bits) just
// before the row is updated from L1/L2, and a row holding NaN or Inf is skipped whole.
//
// Reductions (optim_grad_check, optim_stats, row norms, max_norm_project) use 32 float64 lanes in
// the order of a CUDA warp (lane l takes elements l, l + 32, ...; lanes folded as a shuffle tree)
// on blocks of kOptimBlock elements combined in order, so results depend neither on the thread
// count nor on the device.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/dispatch.hpp"
#include "kernels/optim.hpp"
#include "kernels/optim_math.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {
namespace {

using detail::kOptimBlock;
using detail::kOptimLanes;
using detail::OptimConst;
using detail::OptimPlan;
using detail::OptimTensor;

// Folds 32 lanes as a warp's shuffle-down tree does: lane l += lane l + offset, offset 16 .. 1.
template <class A>
A fold_lanes(A* acc) {
  for (int off = kOptimLanes / 2; off >= 1; off /= 2)
    for (int l = 0; l < off; ++l) acc[l] += acc[l + off];
  return acc[0];
}

template <class T>
double lanes_sumsq(const T* __restrict x, std::int64_t n) {
  double acc[kOptimLanes] = {};
  std::int64_t j = 0;
  for (; j + kOptimLanes <= n; j += kOptimLanes)
    for (int l = 0; l < kOptimLanes; ++l) {
      const double v = static_cast<double>(x[j + l]);
      acc[l] += v * v;
    }
  for (int l = 0; j + l < n; ++l) {
    const double v = static_cast<double>(x[j + l]);
    acc[l] += v * v;
  }
  return fold_lanes(acc);
}

template <class T>
std::int64_t count_nonfinite(const T* x, std::int64_t n) {
  std::int64_t c = 0;
  for (std::int64_t i = 0; i < n; ++i) c += !std::isfinite(x[i]);
  return c;
}

// Whether x[0 .. n) holds no NaN or Inf: the largest magnitude bits, compared with those of the
// largest finite value (integer max and or reductions vectorize; float ones would not).
template <class T>
bool all_finite(const T* __restrict x, std::int64_t n) {
  using S = std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>;
  constexpr S magnitude = std::numeric_limits<S>::max();
  S top;
  const T big = std::numeric_limits<T>::max();
  std::memcpy(&top, &big, sizeof top);
  S acc = 0;
#pragma GCC unroll 4
  for (std::int64_t i = 0; i < n; ++i) {
    S u;
    std::memcpy(&u, x + i, sizeof u);
    if constexpr (sizeof(T) == 4) {
      u &= magnitude;
      acc = u > acc ? u : acc;  // vpmaxsd
    } else {
      acc |= static_cast<S>((u & magnitude) > top);  // no 64-bit max before AVX-512
    }
  }
  return sizeof(T) == 4 ? acc <= top : acc == 0;
}

// The step over [b, e). CHECK: returns whether some gradient there was NaN or Inf (a flag: an OR
// in the loop vectorizes cheaply, a count would not).
template <class V, bool FIRST, bool CHECK, class T>
int update_loop(const OptimConst<T> c, T* __restrict w, const T* __restrict g, T* __restrict s0, T* __restrict s1,
                T* __restrict s2, std::int64_t b, std::int64_t e) {
  int bad = 0;
  for (std::int64_t i = b; i < e; ++i) bad |= !detail::optim_element<V, FIRST, CHECK>(c, w, g, s0, s1, s2, i);
  return bad;
}

// Elements [b, e): the step, one 4 KiB page of elements at a time. Before each, the page two
// ahead of every array is touched with a prefetch: its address translation and first lines are
// under way before the loop gets there (the hardware prefetchers stop at page boundaries, and a
// TLB miss costs more in a virtual machine), worth 5-15% on tensors not backed by huge pages.
// CHECK: elements with a non-finite gradient keep their values and state; returns how many
// there were.
template <class V, bool CHECK, class T>
std::int64_t update_range(const OptimConst<T>& c, T* w, const T* g, T* s0, T* s1, T* s2, std::int64_t b,
                          std::int64_t e) {
  constexpr std::int64_t kPage = 4096 / static_cast<std::int64_t>(sizeof(T));
  constexpr std::int64_t kAhead = 2 * kPage;
  const bool first = V::kind == OptimKind::sgd && V::momentum && c.first;
  int bad = 0;
  for (std::int64_t lo = b; lo < e; lo += kPage) {
    const std::int64_t hi = std::min(e, lo + kPage);
    if (lo + kAhead < e) {
      const std::int64_t a = lo + kAhead;
      __builtin_prefetch(w + a);
      __builtin_prefetch(g + a);
      if (s0 != nullptr) __builtin_prefetch(s0 + a);
      if (s1 != nullptr) __builtin_prefetch(s1 + a);
      if (s2 != nullptr) __builtin_prefetch(s2 + a);
    }
    bad |= first ? update_loop<V, true, CHECK>(c, w, g, s0, s1, s2, lo, hi)
                 : update_loop<V, false, CHECK>(c, w, g, s0, s1, s2, lo, hi);
  }
  return CHECK && bad != 0 ? count_nonfinite(g + b, e - b) : 0;
}

// Elements [b, e) of one tensor; for a max-norm tensor b and e are row boundaries. CHECK: returns
// the count of non-finite gradient values; their elements (max-norm: their rows) are unchanged.
template <class V, bool CHECK, class T>
std::int64_t update_piece(const OptimPlan& plan, const OptimTensor& t, std::int64_t b, std::int64_t e) {
  const OptimConst<T> c = detail::optim_const<T>(plan.s, t);
  T* w = static_cast<T*>(t.w);
  const T* g = static_cast<const T*>(t.g);
  T* s0 = static_cast<T*>(t.s0);
  T* s1 = static_cast<T*>(t.s1);
  T* s2 = static_cast<T*>(t.s2);
  if (t.row == 0) return update_range<V, CHECK, T>(c, w, g, s0, s1, s2, b, e);
  std::int64_t bad = 0;
  for (std::int64_t r = b; r < e; r += t.row) {
    if (CHECK && !all_finite(g + r, t.row)) {  // the row is then in L1/L2 for the update
      bad += count_nonfinite(g + r, t.row);
      continue;
    }
    // One pass over memory: the row is updated, then its squared norm summed (lanes in the GPU's
    // order) and the row rescaled while it is still in L1/L2.
    update_range<V, false, T>(c, w, g, s0, s1, s2, r, r + t.row);
    const double norm = std::sqrt(lanes_sumsq(w + r, t.row));
    if (norm > t.max_norm) {
      const T s = static_cast<T>(t.max_norm / norm);
      T* __restrict x = w + r;
      for (std::int64_t i = 0; i < t.row; ++i) x[i] = x[i] * s;
    }
  }
  return bad;
}

template <class V, bool CHECK, class T>
void run_step(const OptimPlan& plan, std::int64_t* nonfinite) {
  const std::vector<OptimTensor>& ts = plan.tensors;
  const std::size_t n = ts.size();
  std::vector<std::int64_t> start(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) start[i + 1] = start[i] + ts[i].numel;
  const std::int64_t total = start[n];
  if (total == 0) return;
  // Index of the tensor holding global element x (the last one starting at or before x).
  auto tensor_at = [&](std::int64_t x) {
    return static_cast<std::size_t>(std::upper_bound(start.begin(), start.end(), x) - start.begin() - 1);
  };
  auto snap = [&](std::int64_t x) {
    if (x >= total) return total;
    const std::size_t i = tensor_at(x);
    const std::int64_t unit = ts[i].row > 0 ? ts[i].row : 16;
    return start[i] + (x - start[i]) / unit * unit;
  };
  auto run_range = [&](std::int64_t b, std::int64_t e) {
    while (b < e) {
      const std::size_t i = tensor_at(b);
      const std::int64_t stop = std::min(e, start[i + 1]);
      const std::int64_t bad = update_piece<V, CHECK, T>(plan, ts[i], b - start[i], stop - start[i]);
      if (CHECK && bad != 0) {
#pragma omp atomic
        nonfinite[i] += bad;
      }
      b = stop;
    }
  };
  const int threads = static_cast<int>(std::min<std::int64_t>(max_threads(), std::max<std::int64_t>(1, total / 16384)));
  if (threads <= 1) {
    run_range(0, total);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  {
    const std::int64_t nt = omp_get_num_threads();
    const std::int64_t t = omp_get_thread_num();
    const std::int64_t b = snap(static_cast<std::int64_t>(static_cast<double>(total) * t / nt));
    const std::int64_t e = t + 1 == nt ? total : snap(static_cast<std::int64_t>(static_cast<double>(total) * (t + 1) / nt));
    run_range(b, e);
  }
#else
  run_range(0, total);
#endif
}

// The blocks of kOptimBlock elements of a list of tensors: (tensor, begin) in order.
struct Block {
  std::size_t tensor;
  std::int64_t begin, end;
};

std::vector<Block> blocks_of(const std::vector<Tensor>& ts) {
  std::vector<Block> blocks;
  for (std::size_t i = 0; i < ts.size(); ++i)
    for (std::int64_t b = 0; b < ts[i].numel(); b += kOptimBlock)
      blocks.push_back({i, b, std::min(ts[i].numel(), b + kOptimBlock)});
  return blocks;
}

// Runs f(block index) for every block in parallel (static contiguous split). Each thread walks
// its blocks from last to first, so the first blocks of its range are the ones still in cache
// when a following pass (the step after a gradient check) starts there.
template <class F>
void for_blocks(std::size_t count, F&& f) {
  parallel_for(
      static_cast<std::int64_t>(count),
      [&](std::int64_t b0, std::int64_t b1) {
        for (std::int64_t b = b1 - 1; b >= b0; --b) f(static_cast<std::size_t>(b));
      },
      /*grain=*/4);
}

}  // namespace

void optim_step(const OptimPlan& plan, std::int64_t* nonfinite) {
  detail::dispatch_float(plan.dtype, [&](auto tag) {
    using T = decltype(tag);
    detail::dispatch_optim_variant(plan, [&](auto variant) {
      if (nonfinite != nullptr) run_step<decltype(variant), true, T>(plan, nonfinite);
      else run_step<decltype(variant), false, T>(plan, nullptr);
    });
  });
}

void optim_grad_check(const std::vector<Tensor>& grads, bool need_sumsq, std::vector<double>& sumsq,
                      std::vector<std::int64_t>& nonfinite) {
  if (grads.empty()) return;
  const std::vector<Block> blocks = blocks_of(grads);
  std::vector<double> part(blocks.size());
  std::vector<std::int64_t> bad(blocks.size());
  detail::dispatch_float(grads[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    for_blocks(blocks.size(), [&](std::size_t k) {
      const Block& bl = blocks[k];
      const T* x = grads[bl.tensor].data_as<T>() + bl.begin;
      const std::int64_t n = bl.end - bl.begin;
      std::int32_t cnt[kOptimLanes] = {};
      // x - x is NaN exactly for NaN and +-Inf: a compare in the vector unit, no float64 work.
      auto count = [&](int l, T v) { cnt[l] += (v - v) != (v - v); };
      if (need_sumsq) {
        double acc[kOptimLanes] = {};
        std::int64_t j = 0;
        for (; j + kOptimLanes <= n; j += kOptimLanes)
          for (int l = 0; l < kOptimLanes; ++l) {
            const double d = static_cast<double>(x[j + l]);
            acc[l] += d * d;
            count(l, x[j + l]);
          }
        for (int l = 0; j + l < n; ++l) {
          const double d = static_cast<double>(x[j + l]);
          acc[l] += d * d;
          count(l, x[j + l]);
        }
        part[k] = fold_lanes(acc);
      } else {
        std::int64_t j = 0;
        for (; j + kOptimLanes <= n; j += kOptimLanes)
          for (int l = 0; l < kOptimLanes; ++l) count(l, x[j + l]);
        for (int l = 0; j + l < n; ++l) count(l, x[j + l]);
        part[k] = 0.0;
      }
      bad[k] = fold_lanes(cnt);
    });
  });
  for (std::size_t k = 0; k < blocks.size(); ++k) {
    sumsq[blocks[k].tensor] += part[k];
    nonfinite[blocks[k].tensor] += bad[k];
  }
}

void optim_stats(const std::vector<Tensor>& params, std::vector<double>& abs_sum, std::vector<double>& sq_sum,
                 std::vector<std::int64_t>& nonzero) {
  if (params.empty()) return;
  const std::vector<Block> blocks = blocks_of(params);
  std::vector<double> pa(blocks.size()), ps(blocks.size());
  std::vector<std::int64_t> pn(blocks.size());
  detail::dispatch_float(params[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    for_blocks(blocks.size(), [&](std::size_t k) {
      const Block& bl = blocks[k];
      const T* x = params[bl.tensor].data_as<T>() + bl.begin;
      const std::int64_t n = bl.end - bl.begin;
      double a[kOptimLanes] = {}, s[kOptimLanes] = {};
      std::int64_t z[kOptimLanes] = {};
      auto add = [&](int l, T v) {
        const double d = static_cast<double>(v);
        a[l] += d < 0.0 ? -d : d;
        s[l] += d * d;
        z[l] += v != T(0);
      };
      std::int64_t j = 0;
      for (; j + kOptimLanes <= n; j += kOptimLanes)
        for (int l = 0; l < kOptimLanes; ++l) add(l, x[j + l]);
      for (int l = 0; j + l < n; ++l) add(l, x[j + l]);
      pa[k] = fold_lanes(a);
      ps[k] = fold_lanes(s);
      pn[k] = fold_lanes(z);
    });
  });
  for (std::size_t k = 0; k < blocks.size(); ++k) {
    abs_sum[blocks[k].tensor] += pa[k];
    sq_sum[blocks[k].tensor] += ps[k];
    nonzero[blocks[k].tensor] += pn[k];
  }
}

void max_norm_project(const Tensor& w, double max_norm, std::int64_t outer, std::int64_t units, std::int64_t inner) {
  detail::dispatch_float(w.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* x = w.data_as<T>();
    const std::int64_t per_unit = outer * inner;
    parallel_for(
        units,
        [=](std::int64_t j0, std::int64_t j1) {
          for (std::int64_t j = j0; j < j1; ++j) {
            // Element k of unit j (k = a * inner + b) lives at (a * units + j) * inner + b.
            auto at = [&](std::int64_t k) { return (k / inner * units + j) * inner + k % inner; };
            double acc[kOptimLanes] = {};
            for (std::int64_t k = 0; k < per_unit; ++k) {
              const double v = static_cast<double>(x[at(k)]);
              acc[k % kOptimLanes] += v * v;
            }
            const double norm = std::sqrt(fold_lanes(acc));
            if (norm > max_norm) {
              const T s = static_cast<T>(max_norm / norm);
              for (std::int64_t k = 0; k < per_unit; ++k) x[at(k)] = x[at(k)] * s;
            }
          }
        },
        /*grain=*/16);
  });
}

}  // namespace seisoku::cpu
