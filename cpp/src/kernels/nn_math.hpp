#pragma once
// Scalar activation math shared by the CPU kernels and their CUDA twins.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "seisoku/activation.hpp"
#include "seisoku/export.hpp"
#include "seisoku/philox.hpp"

namespace seisoku::detail {

template <class T>
SEISOKU_HD T exp_(T x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return std::exp(x);
#endif
}

template <class T>
SEISOKU_HD T tanh_(T x) {
#if defined(__CUDA_ARCH__)
  return tanh(x);
#else
  return std::tanh(x);
#endif
}

template <class T>
SEISOKU_HD T act_forward(T x, Activation act, T slope) {
  switch (act) {
    case Activation::relu: return x < T(0) ? T(0) : x;  // NaN stays NaN (divergence shows)
    case Activation::leaky_relu: return x > T(0) ? x : x * slope;
    case Activation::tanh: return tanh_(x);
    case Activation::sigmoid: {
      if (x >= T(0)) return T(1) / (T(1) + exp_(-x));
      const T e = exp_(x);
      return e / (T(1) + e);
    }
    default: return x;
  }
}

// act'(x) written in terms of y = act(x).
template <class T>
SEISOKU_HD T act_derivative(T y, Activation act, T slope) {
  switch (act) {
    case Activation::relu: return y > T(0) ? T(1) : T(0);
    case Activation::leaky_relu: return y > T(0) ? T(1) : slope;
    case Activation::tanh: return T(1) - y * y;
    case Activation::sigmoid: return y * (T(1) - y);
    default: return T(1);
  }
}

// Calls f(std::integral_constant<Activation, A>{}) for the activation A = act, so that loops
// inside f see a constant activation (no switch per element; the simple ones vectorize).
template <class F>
void dispatch_activation(Activation act, F&& f) {
  switch (act) {
    case Activation::relu: f(std::integral_constant<Activation, Activation::relu>{}); break;
    case Activation::leaky_relu: f(std::integral_constant<Activation, Activation::leaky_relu>{}); break;
    case Activation::tanh: f(std::integral_constant<Activation, Activation::tanh>{}); break;
    case Activation::sigmoid: f(std::integral_constant<Activation, Activation::sigmoid>{}); break;
    default: f(std::integral_constant<Activation, Activation::identity>{}); break;
  }
}

// Whether a 32-bit Philox word keeps its element (word < threshold), as a signed compare of
// biased values so that loops vectorize (AVX2 has no unsigned compare).
inline bool keeps(std::uint32_t word, std::int32_t biased_threshold) {
  return static_cast<std::int32_t>(word ^ 0x80000000u) < biased_threshold;
}
inline std::int32_t biased(std::uint32_t threshold) { return static_cast<std::int32_t>(threshold ^ 0x80000000u); }

// Whether dropout with probability p drops anything (1 - p rounds to 1 for p <= 2^-54).
inline bool drops(double p) { return p > 0.0 && 1.0 - p < 1.0; }

// Keep threshold of a dropout mask: element kept when its word < threshold; needs drops(p).
inline std::uint32_t keep_threshold(double p) {
  return static_cast<std::uint32_t>(philox::bernoulli_threshold(1.0 - p));
}

}  // namespace seisoku::detail
