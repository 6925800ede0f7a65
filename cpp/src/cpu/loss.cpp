// CPU kernels of the loss family. Every loss is one row function over the batch: a row (one
// sample) is handled by one thread in a fixed element order, returns its loss l_i in float64
// and writes its gradient row already scaled by w_i / sum(w). Rows run in parallel into a
// float64 buffer; sum(w) and sum_i w_i l_i are then reduced with block_reduce (fixed blocks,
// combined in order), so every result is bit-identical for any thread count. Elementwise math
// runs in the input dtype, row and batch sums in float64. A sample with weight 0 contributes
// nothing (its loss is skipped even when not finite).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dispatch.hpp"
#include "kernels/loss.hpp"
#include "parallel.hpp"

namespace seisoku::cpu {
namespace {

using detail::dispatch_float;

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
          const double g = (w == nullptr ? 1.0 : static_cast<double>(w[r])) * inv_w;
          rl[r] = row(r, g);
          if (ps != nullptr) ps[r] = static_cast<T>(rl[r]);
        }
      },
      /*grain=*/std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(row_elems, 1)));
  const double s = block_reduce(
      n, 0.0,
      [w, rl](std::int64_t b, std::int64_t e) {
        double acc = 0.0;
        for (std::int64_t i = b; i < e; ++i) {
          const double wi = w == nullptr ? 1.0 : static_cast<double>(w[i]);
          if (wi != 0.0) acc += wi * rl[i];
        }
        return acc;
      },
      plus);
  *loss.data_as<T>() = static_cast<T>(s * inv_w);
}

template <class T>
T row_max(const T* x, std::int64_t k) {
  T m = x[0];
  for (std::int64_t j = 1; j < k; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

template <class T, class I>
void cross_entropy_impl(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                        const Tensor& grad, const Tensor& per_sample, double q_true, double q_other) {
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
      const T e = std::exp(z);
      s += static_cast<double>(e);
      sz += static_cast<double>(z);
      if (gr != nullptr) gr[j] = e;
    }
    if (gr != nullptr) {
      const double inv_s = 1.0 / s;
      for (std::int64_t j = 0; j < k; ++j) {
        const double q = j == y ? q_true : q_other;
        gr[j] = static_cast<T>((static_cast<double>(gr[j]) * inv_s - q) * g);
      }
    }
    // -sum_k q_k (z_k - lse) with sum_k q_k = 1.
    const double zy = static_cast<double>(x[y] - m);
    return std::log(s) - (q_true - q_other) * zy - (q_other != 0.0 ? q_other * sz : 0.0);
  });
}

template <class T>
void mse_impl(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss, const Tensor& grad,
              const Tensor& per_sample) {
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
        const double e = static_cast<double>(x[j]) - static_cast<double>(t[j]);
        s += e * e;
      }
    } else {
      T* gr = gs + r * d;
      const double c = 2.0 * inv_d * g;
      for (std::int64_t j = 0; j < d; ++j) {
        const double e = static_cast<double>(x[j]) - static_cast<double>(t[j]);
        s += e * e;
        gr[j] = static_cast<T>(c * e);
      }
    }
    return s * inv_d;
  });
}

template <class T>
void bce_impl(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
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
    const double c = inv_d * g;
    double s = 0.0;
    for (std::int64_t j = 0; j < d; ++j) {
      const T xv = x[j], tv = t[j];
      const T e = std::exp(-std::fabs(xv));
      s += static_cast<double>(std::max(xv, T(0)) - xv * tv) + static_cast<double>(std::log1p(e));
      if (gr != nullptr) {
        const T sig = xv >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
        gr[j] = static_cast<T>(c * (static_cast<double>(sig) - static_cast<double>(tv)));
      }
    }
    return s * inv_d;
  });
}

template <class T>
void kl_impl(const Tensor& student, const Tensor& teacher, double temperature, const Tensor& weight,
             const Tensor& loss, const Tensor& grad, const Tensor& per_sample, bool scale_t2) {
  const std::int64_t n = student.shape()[0], k = student.shape()[1];
  const T* ss = student.data_as<T>();
  const T* ts = teacher.data_as<T>();
  T* gs = opt<T>(grad);
  const T inv_t = static_cast<T>(1.0 / temperature);
  const double loss_factor = scale_t2 ? temperature * temperature : 1.0;
  const double grad_factor = scale_t2 ? temperature : 1.0 / temperature;
  reduce_rows<T>(n, k, weight, loss, per_sample, [=](std::int64_t r, double g) {
    const T* s = ss + r * k;
    const T* t = ts + r * k;
    // a = s / T and b = t / T; their maxima give stable log-softmaxes.
    T ma = s[0] * inv_t, mb = t[0] * inv_t;
    for (std::int64_t j = 1; j < k; ++j) {
      const T a = s[j] * inv_t, b = t[j] * inv_t;
      ma = a > ma ? a : ma;
      mb = b > mb ? b : mb;
    }
    double sa = 0.0, sb = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      sa += static_cast<double>(std::exp(s[j] * inv_t - ma));
      sb += static_cast<double>(std::exp(t[j] * inv_t - mb));
    }
    const double lsa = std::log(sa), lsb = std::log(sb);
    // log p_t - log p_s = (b - a) + shift
    const double shift = (static_cast<double>(ma) + lsa) - (static_cast<double>(mb) + lsb);
    T* gr = gs == nullptr ? nullptr : gs + r * k;
    const double c = grad_factor * g;
    double kl = 0.0;
    for (std::int64_t j = 0; j < k; ++j) {
      const T a = s[j] * inv_t, b = t[j] * inv_t;
      const double pt = std::exp(static_cast<double>(b - mb) - lsb);
      if (pt != 0.0) kl += pt * (static_cast<double>(b - a) + shift);
      if (gr != nullptr) {
        const double ps = std::exp(static_cast<double>(a - ma) - lsa);
        gr[j] = static_cast<T>(c * (ps - pt));
      }
    }
    return kl * loss_factor;
  });
}

}  // namespace

void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                   const Tensor& grad, const Tensor& per_sample, double q_true, double q_other) {
  dispatch_float(logits.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (target.dtype() == DType::int64)
      cross_entropy_impl<T, std::int64_t>(logits, target, weight, loss, grad, per_sample, q_true, q_other);
    else
      cross_entropy_impl<T, std::int32_t>(logits, target, weight, loss, grad, per_sample, q_true, q_other);
  });
}

void mse(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss, const Tensor& grad,
         const Tensor& per_sample) {
  dispatch_float(pred.dtype(),
                 [&](auto tag) { mse_impl<decltype(tag)>(pred, target, weight, loss, grad, per_sample); });
}

void bce_with_logits(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                     const Tensor& grad, const Tensor& per_sample) {
  dispatch_float(logits.dtype(),
                 [&](auto tag) { bce_impl<decltype(tag)>(logits, target, weight, loss, grad, per_sample); });
}

void kl_div_softened(const Tensor& student_logits, const Tensor& teacher_logits, double temperature,
                     const Tensor& weight, const Tensor& loss, const Tensor& grad, const Tensor& per_sample,
                     bool scale_t2) {
  dispatch_float(student_logits.dtype(), [&](auto tag) {
    kl_impl<decltype(tag)>(student_logits, teacher_logits, temperature, weight, loss, grad, per_sample, scale_t2);
  });
}

}  // namespace seisoku::cpu
