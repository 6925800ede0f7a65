#pragma once
// OpenMP helpers for the CPU kernels. Work is split into fixed-size blocks whose layout
// does not depend on the thread count, so reductions combine the same partials in the same
// order for 1 or N threads.
#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace seisoku::cpu {

// Below this many elements a loop runs on the calling thread.
constexpr std::int64_t kParallelGrain = 1 << 15;
// Reduction block: partial results are formed per block and combined in block order.
constexpr std::int64_t kReduceBlock = 8192;

// seisoku's own thread count (seisoku::set_num_threads; defined in core/runtime.cpp). Every
// parallel region passes it as num_threads(n) and never calls omp_set_num_threads, so the
// count is independent of the OpenMP runtime's default, which other libraries sharing the
// runtime set for themselves (PyTorch's torch.set_num_threads loads the same libgomp.so.1).
int max_threads();

// first(t) for t < n1, then, once all of them are done, second(t) for t < n2, each handed to
// the threads as they come free: one team for both, so the workers are woken once (with
// OMP_WAIT_POLICY=PASSIVE, as seisoku sets it, each wake-up costs some 10 us). On the calling
// thread alone with one thread or when `parallel` is false (work too small to pay the wake-up).
template <class F1, class F2>
void two_phases(std::int64_t n1, F1&& first, std::int64_t n2, F2&& second, bool parallel = true) {
  const int threads = max_threads();
  if (threads == 1 || !parallel) {
    for (std::int64_t t = 0; t < n1; ++t) first(t);
    for (std::int64_t t = 0; t < n2; ++t) second(t);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t t = 0; t < n1; ++t) first(t);
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t t = 0; t < n2; ++t) second(t);
  }
#else
  for (std::int64_t t = 0; t < n1; ++t) first(t);
  for (std::int64_t t = 0; t < n2; ++t) second(t);
#endif
}

// Calls f(begin, end) on disjoint ranges covering [0, n), in parallel when n is large.
template <class F>
void parallel_for(std::int64_t n, F&& f, std::int64_t grain = kParallelGrain) {
  if (n <= 0) return;
  const int threads = max_threads();
  if (n <= grain || threads == 1) {
    f(std::int64_t{0}, n);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads)
  {
    const std::int64_t nt = omp_get_num_threads();
    const std::int64_t t = omp_get_thread_num();
    // 64-element aligned ranges keep vector loops and cache lines whole.
    const std::int64_t per = ((n + nt - 1) / nt + 63) / 64 * 64;
    const std::int64_t b = std::min(n, t * per);
    const std::int64_t e = std::min(n, b + per);
    if (b < e) f(b, e);
  }
#else
  f(std::int64_t{0}, n);
#endif
}

// Deterministic reduction: partial(begin, end) on each kReduceBlock-sized block, then
// combine(acc, partial) over the blocks in order starting from init.
template <class R, class Partial, class Combine>
R block_reduce(std::int64_t n, R init, Partial&& partial, Combine&& combine) {
  const std::int64_t blocks = (n + kReduceBlock - 1) / kReduceBlock;
  if (blocks <= 1) return n > 0 ? combine(init, partial(std::int64_t{0}, n)) : init;
  std::vector<R> parts(static_cast<std::size_t>(blocks));
  parallel_for(
      blocks,
      [&](std::int64_t b0, std::int64_t b1) {
        for (std::int64_t b = b0; b < b1; ++b)
          parts[static_cast<std::size_t>(b)] = partial(b * kReduceBlock, std::min(n, (b + 1) * kReduceBlock));
      },
      /*grain=*/4);
  R acc = init;
  for (const R& p : parts) acc = combine(acc, p);
  return acc;
}

// Calls f(t) for every task t in [0, n), handed to the threads in chunks of about n / (8
// threads) tasks as they come free (so a thread the OS holds back delays the rest little),
// when the total work n * cost (in elements) reaches kParallelGrain. For loops over tens to
// thousands of row-sized tasks, where parallel_for's 64-aligned ranges would leave threads
// idle. Each task must write its own outputs only, so results never depend on the split.
template <class F>
void parallel_tasks(std::int64_t n, std::int64_t cost, F&& f) {
  const int threads = max_threads();
  if (threads == 1 || n <= 1 || n * cost < kParallelGrain) {
    for (std::int64_t t = 0; t < n; ++t) f(t);
    return;
  }
#if defined(_OPENMP)
  const std::int64_t chunk = std::max<std::int64_t>(1, n / (8 * std::int64_t{threads}));
#pragma omp parallel for num_threads(threads) schedule(dynamic, chunk)
  for (std::int64_t t = 0; t < n; ++t) f(t);
#else
  for (std::int64_t t = 0; t < n; ++t) f(t);
#endif
}

}  // namespace seisoku::cpu
