#pragma once
// Loss math shared by the CPU kernels (cpp/src/cpu/loss.cpp) and their CUDA twins
// (cuda/loss.cu), so that every formula of the family is written once. The kernels own the
// loops and the reductions (a row in element order on one CPU thread; a group of threads on
// the GPU); these functions are the per-element terms, the per-row closing formulas and the
// host-side constants. Elementwise math runs in the input dtype T, row sums in float64, as
// the kernels call them.
#include <cmath>
#include <cstdint>

#include "kernels/nn_math.hpp"
#include "seisoku/export.hpp"
#include "seisoku/loss.hpp"

namespace seisoku::detail {

template <class T>
SEISOKU_HD T log1p_(T x) {
#if defined(__CUDA_ARCH__)
  return log1p(x);
#else
  return std::log1p(x);
#endif
}

template <class T>
SEISOKU_HD T abs_(T x) {
#if defined(__CUDA_ARCH__)
  return fabs(x);
#else
  return std::fabs(x);
#endif
}

SEISOKU_HD double log_(double x) {
#if defined(__CUDA_ARCH__)
  return log(x);
#else
  return std::log(x);
#endif
}

// max(a, b) that lets a NaN through from either side (a row with a NaN has a NaN loss).
template <class T>
SEISOKU_HD T max_nan(T a, T b) {
  return (a > b || a != a) ? a : b;
}

// ---- batch reduction ----

// Gradient factor w_r / sum(w) of a row; inv_total = 1 / sum(w) (1 / N without weights).
template <class T>
SEISOKU_HD double sample_factor(const T* w, std::int64_t r, double inv_total) {
  return (w == nullptr ? 1.0 : static_cast<double>(w[r])) * inv_total;
}

// Term w_i l_i of the weighted batch sum: a sample of weight 0 adds nothing, even when its
// loss is not finite.
SEISOKU_HD double weighted_loss(double w, double l) { return w != 0.0 ? w * l : 0.0; }

// ---- cross_entropy ----

// The label-smoothed one-hot target: q_true for the labelled class, q_other for the others.
struct SmoothedTarget {
  double q_true, q_other;
};

// Target of smoothing eps over k classes: the lecture's convention puts 1 - eps on the true
// class and eps / (k - 1) on every other; the uniform one mixes eps of the uniform
// distribution in (1 - eps + eps / k and eps / k). Host only.
inline SmoothedTarget smoothed_target(double eps, SmoothingConvention convention, std::int64_t k) {
  if (convention == SmoothingConvention::lecture)
    return {1.0 - eps, k > 1 ? eps / static_cast<double>(k - 1) : 0.0};
  const double q_other = eps / static_cast<double>(k);
  return {1.0 - eps + q_other, q_other};
}

// Whether y is a class index of a row of k logits.
template <class I>
SEISOKU_HD bool is_class(I y, std::int64_t k) {
  return y >= 0 && static_cast<std::int64_t>(y) < k;
}

// Row loss -sum_j q_j (z_j - log s) (sum_j q_j = 1) from the shifted logits z = x - max(x):
// s = sum_j exp(z_j), sz = sum_j z_j and zy = z_y of the labelled class y.
SEISOKU_HD double cross_entropy_row(double s, double sz, double zy, const SmoothedTarget& q) {
  return log_(s) - (q.q_true - q.q_other) * zy - (q.q_other != 0.0 ? q.q_other * sz : 0.0);
}

// Gradient element (softmax_j - q_j) * c from e = exp(z_j), inv_s = 1 / s, q = q_j and the
// sample factor c.
template <class T>
SEISOKU_HD T cross_entropy_grad(T e, double inv_s, double q, double c) {
  return static_cast<T>((static_cast<double>(e) * inv_s - q) * c);
}

// ---- mse_loss ----

// Error of one element, pred - target, in float64; the row loss is the mean of its squares.
template <class T>
SEISOKU_HD double mse_error(T x, T t) {
  return static_cast<double>(x) - static_cast<double>(t);
}

// Factor f of the gradient elements f * error: 2 / d * c for d elements per sample
// (inv_d = 1 / d) and the sample factor c.
SEISOKU_HD double mse_grad_factor(double inv_d, double c) { return 2.0 * inv_d * c; }

template <class T>
SEISOKU_HD T mse_grad(double error, double f) {
  return static_cast<T>(f * error);
}

// ---- bce_with_logits ----

// One element of binary cross-entropy on logit x against target t: the loss term
// max(x, 0) - x t + log1p(exp(-|x|)) (finite for every finite x) and sigmoid(x), both from
// one exp(-|x|).
template <class T>
struct BceTerm {
  double loss;
  T sigmoid;
};

template <class T>
SEISOKU_HD BceTerm<T> bce_with_logits_term(T x, T t) {
  const T e = exp_(static_cast<T>(-abs_(x)));
  const T relu = x < T(0) ? T(0) : x;
  const T sig = x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
  return {static_cast<double>(relu - x * t) + static_cast<double>(log1p_(e)), sig};
}

// Factor f of the gradient elements f * (sigmoid(x) - t): c / d for d elements per sample
// (inv_d = 1 / d) and the sample factor c.
SEISOKU_HD double bce_with_logits_grad_factor(double inv_d, double c) { return inv_d * c; }

template <class T>
SEISOKU_HD T bce_with_logits_grad(T sigmoid, T t, double f) {
  return static_cast<T>(f * (static_cast<double>(sigmoid) - static_cast<double>(t)));
}

// ---- kl_div_softened ----

// Loss and gradient factors of the distillation loss at temperature T: T^2 and T with the
// T^2 scaling (Hinton et al. 2015), 1 and 1 / T without. Host only.
struct SoftenedScale {
  double loss, grad;
};

inline SoftenedScale softened_scale(double temperature, bool scale_t2) {
  return scale_t2 ? SoftenedScale{temperature * temperature, temperature} : SoftenedScale{1.0, 1.0 / temperature};
}

// The row constants of KL(p_t || p_s) with a = student / T and b = teacher / T: their maxima
// ma, mb, the log-normalizers lsa = log sum exp(a - ma) and lsb likewise, and
// shift = (ma + lsa) - (mb + lsb), so that log p_t - log p_s = (b - a) + shift.
template <class T>
struct SoftenedRow {
  T ma, mb;
  double lsa, lsb, shift;
};

template <class T>
SEISOKU_HD SoftenedRow<T> softened_row(T ma, T mb, double sa, double sb) {
  const double lsa = log_(sa), lsb = log_(sb);
  return {ma, mb, lsa, lsb, (static_cast<double>(ma) + lsa) - (static_cast<double>(mb) + lsb)};
}

// exp(v - m - lse): the probability of a softened logit v in float64.
template <class T>
SEISOKU_HD double softened_prob(T v, T m, double lse) {
  return exp_(static_cast<double>(v - m) - lse);
}

// One element of KL(p_t || p_s): p_t (log p_t - log p_s), 0 where p_t underflows to 0.
template <class T>
SEISOKU_HD double kl_term(const SoftenedRow<T>& row, T a, T b, double pt) {
  return pt != 0.0 ? pt * (static_cast<double>(b - a) + row.shift) : 0.0;
}

// Gradient element c * (p_s - p_t), c = the grad factor times the sample factor.
template <class T>
SEISOKU_HD T kl_grad(const SoftenedRow<T>& row, T a, double pt, double c) {
  return static_cast<T>(c * (softened_prob(a, row.ma, row.lsa) - pt));
}

}  // namespace seisoku::detail
