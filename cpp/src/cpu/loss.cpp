// CPU kernels of the loss family. Every loss is one row function over the batch: a row (one
// sample) is handled by one thread in a fixed element order, returns its loss l_i in float64
// and writes its gradient row already scaled by w_i / sum(w). Rows run in parallel into a
// float64 buffer; sum(w) and sum_i w_i l_i are then reduced with block_reduce (fixed blocks,
// combined in order), so every result is bit-identical for any thread count. Elementwise math
// runs in the input dtype, row and batch sums in float64; the formulas are those of
// kernels/loss_math.hpp, shared with the CUDA twins. A sample with weight 0 contributes
// nothing (its loss is skipped even when not finite). cross_entropy scans the class indices
// first and, if one is out of range, returns its row without writing anything.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dispatch.hpp"
#include "kernels/loss.hpp"
#include "kernels/loss_math.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {
namespace {

using detail::dispatch_float;
using detail::max_nan;

template <class T>
T* opt(const Tensor& t) {
  return t.numel() != 0 ? t.data_as<T>() : nullptr;
}

// Runs row(r, g) -> l_r for every sample r, g = w_r / sum(w) being its gradient factor, then
// writes per_sample and the weighted mean loss.
template <class T, class Row>
void reduce_rows(std::int64_t n, std::int64_t row_elems, const Tensor& weight, const Tensor& loss,
                 const Tensor& per_sample, Row&& row) {
  const T* w = opt<const T>(weight);
  const auto plus = [](double a, double b) { return a + b; };
  const double total_w =
      w == nullptr ? static_cast<double>(n)
                   : block_reduce(
                         n, 0.0,
                         [w](std::int64_t b, std::int64_t e) {
                           double s = 0.0;
                           for (std::int64_t i = b; i < e; ++i) s += static_cast<double>(w[i]);
                           return s;
                         },
                         plus);
  const double inv_w = 1.0 / total_w;
  std::vector<double> rows(static_cast<std::size_t>(n));
  double* rl = rows.data();
  T* ps = opt<T>(per_sample);
  parallel_for(
      n,
      [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
          rl[r] = row(r, detail::sample_factor(w, r, inv_w));
          if (ps != nullptr) ps[r] = static_cast<T>(rl[r]);
        }
      },
      /*grain=*/std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(row_elems, 1)));
  const double s = block_reduce(
      n, 0.0,
      [w, rl](std::int64_t b, std::int64_t e) {
        double acc = 0.0;
        for (std::int64_t i = b; i < e; ++i)
          acc += detail::weighted_loss(w == nullptr ? 1.0 : static_cast<double>(w[i]), rl[i]);
        return acc;
      },
      plus);
  *loss.data_as<T>() = static_cast<T>(s * inv_w);
}

template <class T>
T row_max(const T* x, std::int64_t k) {
  T m = x[0];
  for (std::int64_t j = 1; j < k; ++j) m = max_nan(m, x[j]);
  return m;
}

template <class I>
std::int64_t first_bad_class(const Tensor& target, std::int64_t k) {
  const I* y = target.data_as<I>();
  for (std::int64_t r = 0, n = target.numel(); r < n; ++r)
    if (!detail::is_class(y[r], k)) return r;
  return -1;
}

template <class T, class I>
void cross_entropy_impl(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                        const Tensor& grad, const Tensor& per_sample, const detail::SmoothedTarget& q) {
  const std::int64_t n = logits.shape()[0], k = logits.shape()[1];
  const T* xs = logits.data_as<T>();
  const I* ys = target.data_as<I>();
  T* gs = opt<T>(grad);
  reduce_rows<T>(n, k, weight, loss, per_sample, [=](std::int64_t r, double g) {
    const T* x = xs + r * k;
    const std::int64_t y = static_cast<std::int64_t>(ys[r]);
    const T m = row_max(x, k);
    T* gr = gs == nullptr ? nullptr : gs + r * k;
    double s = 0.0, sz = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      const T z = x[j] - m;
      const T e = detail::exp_(z);
      s += static_cast<double>(e);
      sz += static_cast<double>(z);
      if (gr != nullptr) gr[j] = e;
    }
    if (gr != nullptr) {
      const double inv_s = 1.0 / s;
      for (std::int64_t j = 0; j < k; ++j)
        gr[j] = detail::cross_entropy_grad(gr[j], inv_s, j == y ? q.q_true : q.q_other, g);
    }
    return detail::cross_entropy_row(s, sz, static_cast<double>(x[y] - m), q);
  });
}

template <class T>
void mse_loss_impl(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss,
                   const Tensor& grad, const Tensor& per_sample) {
  const std::int64_t n = pred.shape()[0], d = pred.numel() / n;
  const T* xs = pred.data_as<T>();
  const T* ts = target.data_as<T>();
  T* gs = opt<T>(grad);
  const double inv_d = 1.0 / static_cast<double>(d);
  reduce_rows<T>(n, d, weight, loss, per_sample, [=](std::int64_t r, double g) {
    const T* x = xs + r * d;
    const T* t = ts + r * d;
    double s = 0.0;
    if (gs == nullptr) {
      for (std::int64_t j = 0; j < d; ++j) {
        const double e = detail::mse_error(x[j], t[j]);
        s += e * e;
      }
    } else {
      T* gr = gs + r * d;
      const double c = detail::mse_grad_factor(inv_d, g);
      for (std::int64_t j = 0; j < d; ++j) {
        const double e = detail::mse_error(x[j], t[j]);
        s += e * e;
        gr[j] = detail::mse_grad<T>(e, c);
      }
    }
    return s * inv_d;
  });
}

template <class T>
void bce_with_logits_impl(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
              const Tensor& grad, const Tensor& per_sample) {
  const std::int64_t n = logits.shape()[0], d = logits.numel() / n;
  const T* xs = logits.data_as<T>();
  const T* ts = target.data_as<T>();
  T* gs = opt<T>(grad);
  const double inv_d = 1.0 / static_cast<double>(d);
  reduce_rows<T>(n, d, weight, loss, per_sample, [=](std::int64_t r, double g) {
    const T* x = xs + r * d;
    const T* t = ts + r * d;
    T* gr = gs == nullptr ? nullptr : gs + r * d;
    const double c = detail::bce_with_logits_grad_factor(inv_d, g);
    double s = 0.0;
    for (std::int64_t j = 0; j < d; ++j) {
      const detail::BceTerm<T> term = detail::bce_with_logits_term(x[j], t[j]);
      s += term.loss;
      if (gr != nullptr) gr[j] = detail::bce_with_logits_grad(term.sigmoid, t[j], c);
    }
    return s * inv_d;
  });
}

template <class T>
void kl_div_softened_impl(const Tensor& student, const Tensor& teacher, double temperature, const Tensor& weight,
             const Tensor& loss, const Tensor& grad, const Tensor& per_sample, bool scale_t2) {
  const std::int64_t n = student.shape()[0], k = student.shape()[1];
  const T* ss = student.data_as<T>();
  const T* ts = teacher.data_as<T>();
  T* gs = opt<T>(grad);
  const T inv_t = static_cast<T>(1.0 / temperature);
  const detail::SoftenedScale scale = detail::softened_scale(temperature, scale_t2);
  reduce_rows<T>(n, k, weight, loss, per_sample, [=](std::int64_t r, double g) {
    const T* s = ss + r * k;
    const T* t = ts + r * k;
    // a = s / T and b = t / T; their maxima give stable log-softmaxes.
    T ma = s[0] * inv_t, mb = t[0] * inv_t;
    for (std::int64_t j = 1; j < k; ++j) {
      ma = max_nan(ma, static_cast<T>(s[j] * inv_t));
      mb = max_nan(mb, static_cast<T>(t[j] * inv_t));
    }
    double sa = 0.0, sb = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      sa += static_cast<double>(detail::exp_(static_cast<T>(s[j] * inv_t - ma)));
      sb += static_cast<double>(detail::exp_(static_cast<T>(t[j] * inv_t - mb)));
    }
    const detail::SoftenedRow<T> row = detail::softened_row(ma, mb, sa, sb);
    T* gr = gs == nullptr ? nullptr : gs + r * k;
    const double c = scale.grad * g;
    double kl = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      const T a = s[j] * inv_t, b = t[j] * inv_t;
      const double pt = detail::softened_prob(b, mb, row.lsb);
      kl += detail::kl_term(row, a, b, pt);
      if (gr != nullptr) gr[j] = detail::kl_grad(row, a, pt, c);
    }
    return kl * scale.loss;
  });
}

}  // namespace

std::int64_t cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                           const Tensor& grad, const Tensor& per_sample, const detail::SmoothedTarget& q) {
  const std::int64_t k = logits.shape()[1];
  const bool wide = target.dtype() == DType::int64;
  const std::int64_t bad = wide ? first_bad_class<std::int64_t>(target, k) : first_bad_class<std::int32_t>(target, k);
  if (bad >= 0) return bad;
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (wide)
      cross_entropy_impl<T, std::int64_t>(logits, target, weight, loss, grad, per_sample, q);
    else
      cross_entropy_impl<T, std::int32_t>(logits, target, weight, loss, grad, per_sample, q);
  });
  return -1;
}

void mse_loss(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss,
              const Tensor& grad, const Tensor& per_sample) {
  dispatch_float(pred.dtype(),
                 [&](auto tag) { mse_loss_impl<decltype(tag)>(pred, target, weight, loss, grad, per_sample); });
}

void bce_with_logits(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                     const Tensor& grad, const Tensor& per_sample) {
  dispatch_float(logits.dtype(), [&](auto tag) {
    bce_with_logits_impl<decltype(tag)>(logits, target, weight, loss, grad, per_sample);
  });
}

void kl_div_softened(const Tensor& student_logits, const Tensor& teacher_logits, double temperature,
                     const Tensor& weight, const Tensor& loss, const Tensor& grad, const Tensor& per_sample,
                     bool scale_t2) {
  dispatch_float(student_logits.dtype(), [&](auto tag) {
    kl_div_softened_impl<decltype(tag)>(student_logits, teacher_logits, temperature, weight, loss, grad, per_sample,
                                        scale_t2);
  });
}

}  // namespace seisoku::cpu
