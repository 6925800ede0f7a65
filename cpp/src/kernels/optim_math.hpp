#pragma once
// Per-element optimizer math shared by the CPU kernels and their CUDA twins, so both round the
// same way (no contraction into fma on either side). The operations and their order follow
// torch.optim's single-tensor implementations (lerp, addcmul, addcdiv as ATen evaluates them).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/optim.hpp"
#include "seisoku/export.hpp"

namespace seisoku::detail {

template <class T>
SEISOKU_HD T sqrt_(T x) {
#if defined(__CUDA_ARCH__)
  return sqrt(x);
#else
  return std::sqrt(x);
#endif
}

// torch.lerp: a + w (b - a) for w < 0.5, else b - (b - a)(1 - w).
template <class T>
SEISOKU_HD T lerp_(T a, T b, T w) {
  const T d = b - a;
  const T lo = a + w * d;
  const T hi = b - d * (T(1) - w);
  return w < T(0.5) ? lo : hi;  // both formed: a select, no branch in vector loops
}

// The constants of one tensor's step, rounded to T.
template <class T>
struct OptimConst {
  T gscale, clip, l2, l1_sub, decay, lr, neg_lr, neg_step, bc2_sqrt, prox;
  T mu, damp1, beta1c, beta2, beta2c, alpha, alphac, eps;
  bool first;
};

template <class T>
SEISOKU_HD OptimConst<T> optim_const(const OptimScalars& p, const OptimTensor& t) {
  OptimConst<T> c;
  c.gscale = T(p.grad_scale);
  c.clip = T(p.clip_value);
  c.l2 = T(t.l2);
  c.l1_sub = T(t.l1_sub);
  c.decay = T(t.decay);
  c.lr = T(t.lr);
  c.neg_lr = T(-t.lr);
  c.neg_step = T(-t.step_size);
  c.bc2_sqrt = T(t.bc2_sqrt);
  c.prox = T(t.prox);
  c.mu = T(p.mu);
  c.damp1 = T(p.damp1);
  c.beta1c = T(p.beta1c);
  c.beta2 = T(p.beta2);
  c.beta2c = T(p.beta2c);
  c.alpha = T(p.alpha);
  c.alphac = T(p.alphac);
  c.eps = T(p.eps);
  c.first = t.first != 0;
  return c;
}

// The compiled variant of a step: optimizer and the structural flags that decide which
// buffers exist.
template <OptimKind K, bool MOM, bool NEST, bool AMS, bool CENT, bool PROX>
struct OptimVariant {
  static constexpr OptimKind kind = K;
  static constexpr bool momentum = MOM, nesterov = NEST, amsgrad = AMS, centered = CENT, prox = PROX;
};

// Stores v at p[i], or (CHECK and not ok) stores back the value `old` read before: a select, not
// a branch, so that loops vectorize; every element is written either way.
template <bool CHECK, class T>
SEISOKU_HD void put(T* p, std::int64_t i, T v, T old, bool ok) {
  if constexpr (CHECK) {
#if defined(__CUDA_ARCH__)
    p[i] = ok ? v : old;
#else
    // A bitwise blend: the vectorizer turns a select between v and the old p[i] into a masked
    // store and a branch (slow on AVX2).
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    U a, b;
    std::memcpy(&a, &v, sizeof a);
    std::memcpy(&b, &old, sizeof b);
    const U keep = U(0) - static_cast<U>(ok);
    const U r = (a & keep) | (b & ~keep);
    T out;
    std::memcpy(&out, &r, sizeof out);
    p[i] = out;
#endif
  } else {
    p[i] = v;
  }
}

// Updates element i: w, its gradient and its state buffers (s0, s1, s2 by role, see
// OptimTensor), in place. FIRST: the first SGD momentum step (the buffer becomes the gradient).
// CHECK: an element whose gradient is NaN or Inf keeps its value and state (the result is
// formed, then not selected); returns whether the gradient was finite (always true without
// CHECK). Written without branches so that the CPU loops vectorize; NaN propagates.
template <class V, bool FIRST, bool CHECK, class T>
SEISOKU_HD bool optim_element(const OptimConst<T>& c, T* w, const T* g, T* s0, T* s1, T* s2, std::int64_t i) {
  const T w0 = w[i];
  const T g0 = g[i];
  const bool ok = !CHECK || g0 - g0 == T(0);  // x - x is NaN exactly for NaN and +-Inf
  T gr = g0 * c.gscale;
  gr = gr < -c.clip ? -c.clip : gr;
  gr = gr > c.clip ? c.clip : gr;
  gr = gr + c.l2 * w0;
  gr = gr + c.l1_sub * (w0 > T(0) ? T(1) : (w0 < T(0) ? T(-1) : T(0)));
  const T wd = w0 * c.decay;
  T wn;
  T scale = T(1);  // the per-coordinate preconditioner of the proximal threshold: prox / scale
  if constexpr (V::kind == OptimKind::sgd) {
    T d = gr;
    if constexpr (V::momentum) {
      const T b0 = s0[i];
      T b;
      if constexpr (FIRST) b = gr;
      else b = b0 * c.mu + c.damp1 * gr;
      put<CHECK>(s0, i, b, b0, ok);
      if constexpr (V::nesterov) d = gr + c.mu * b;
      else d = b;
    }
    wn = wd + c.neg_lr * d;
  } else if constexpr (V::kind == OptimKind::adam) {
    const T m0 = s0[i], v0 = s1[i];
    const T m = lerp_(m0, gr, c.beta1c);
    put<CHECK>(s0, i, m, m0, ok);
    T v = v0 * c.beta2 + (c.beta2c * gr) * gr;
    put<CHECK>(s1, i, v, v0, ok);
    if constexpr (V::amsgrad) {
      const T vm = s2[i];
      v = ((vm > v) | (vm != vm)) ? vm : v;
      put<CHECK>(s2, i, v, vm, ok);
    }
    scale = sqrt_(v) / c.bc2_sqrt + c.eps;
    wn = wd + (c.neg_step * m) / scale;
  } else if constexpr (V::kind == OptimKind::rmsprop) {
    const T a0 = s0[i];
    const T v = a0 * c.alpha + (c.alphac * gr) * gr;
    put<CHECK>(s0, i, v, a0, ok);
    if constexpr (V::centered) {
      const T ga0 = s2[i];
      const T ga = lerp_(ga0, gr, c.alphac);
      put<CHECK>(s2, i, ga, ga0, ok);
      scale = sqrt_(v + (T(-1) * ga) * ga);
    } else {
      scale = sqrt_(v);
    }
    scale = scale + c.eps;
    if constexpr (V::momentum) {
      const T b0 = s1[i];
      const T b = b0 * c.mu + gr / scale;
      put<CHECK>(s1, i, b, b0, ok);
      wn = wd + c.neg_lr * b;
    } else {
      wn = wd + (c.neg_lr * gr) / scale;
    }
  } else {  // adagrad
    const T s00 = s0[i];
    const T s = s00 + gr * gr;
    put<CHECK>(s0, i, s, s00, ok);
    scale = sqrt_(s) + c.eps;
    wn = wd + (c.neg_lr * gr) / scale;
  }
  if constexpr (V::prox) {
    const T tau = V::kind == OptimKind::sgd ? c.prox : c.prox / scale;
    const T a = (wn < T(0) ? -wn : wn) - tau;
    wn = a > T(0) ? (wn < T(0) ? -a : a) : T(0);
  }
  put<CHECK>(w, i, wn, w0, ok);
  return ok;
}

// Calls f(V{}) with the variant of the plan.
template <class F>
void dispatch_optim_variant(const OptimPlan& p, F&& f) {
  auto prox = [&](auto k, auto mom, auto nest, auto ams, auto cent) {
    using K = decltype(k);
    if (p.prox)
      f(OptimVariant<K::value, decltype(mom)::value, decltype(nest)::value, decltype(ams)::value,
                     decltype(cent)::value, true>{});
    else
      f(OptimVariant<K::value, decltype(mom)::value, decltype(nest)::value, decltype(ams)::value,
                     decltype(cent)::value, false>{});
  };
  using Sgd = std::integral_constant<OptimKind, OptimKind::sgd>;
  using Adam = std::integral_constant<OptimKind, OptimKind::adam>;
  using Rms = std::integral_constant<OptimKind, OptimKind::rmsprop>;
  using Ada = std::integral_constant<OptimKind, OptimKind::adagrad>;
  using Y = std::true_type;
  using N = std::false_type;
  switch (p.kind) {
    case OptimKind::sgd:
      if (!p.momentum) prox(Sgd{}, N{}, N{}, N{}, N{});
      else if (p.nesterov) prox(Sgd{}, Y{}, Y{}, N{}, N{});
      else prox(Sgd{}, Y{}, N{}, N{}, N{});
      break;
    case OptimKind::adam:
      if (p.amsgrad) prox(Adam{}, N{}, N{}, Y{}, N{});
      else prox(Adam{}, N{}, N{}, N{}, N{});
      break;
    case OptimKind::rmsprop:
      if (p.momentum) {
        if (p.centered) prox(Rms{}, Y{}, N{}, N{}, Y{});
        else prox(Rms{}, Y{}, N{}, N{}, N{});
      } else {
        if (p.centered) prox(Rms{}, N{}, N{}, N{}, Y{});
        else prox(Rms{}, N{}, N{}, N{}, N{});
      }
      break;
    case OptimKind::adagrad: prox(Ada{}, N{}, N{}, N{}, N{}); break;
  }
}

}  // namespace seisoku::detail
