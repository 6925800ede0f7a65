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

// Whether a 32-bit Philox word is below a threshold (Bernoulli draws), as a signed compare of
// biased values so that loops vectorize (AVX2 has no unsigned compare).
inline bool keeps(std::uint32_t word, std::int32_t biased_threshold) {
  return static_cast<std::int32_t>(word ^ 0x80000000u) < biased_threshold;
}
inline std::int32_t biased(std::uint32_t threshold) { return static_cast<std::int32_t>(threshold ^ 0x80000000u); }

// Dropout masks (see seisoku/mask.hpp): element i of a tensor takes the 16-bit draw
// mask_draw(block i / 8, i % 8) of the stream and is kept when the draw is below
// keep_bound(p) = 65536 - round(65536 p).
constexpr std::uint32_t kMaskRange = 65536;

// The 16-bit draw of element e (0..7) of a Philox block: half e % 2 (0: low bits, 1: high bits)
// of word e / 2.
SEISOKU_HD std::uint32_t mask_draw(const philox::Block& r, int e) {
  return (r.v[e >> 1] >> (16 * (e & 1))) & 0xFFFFu;
}

// Number of the 65536 draw values that keep an element: 65536 - round(65536 p) (halves round up).
inline std::uint32_t keep_bound(double p) {
  const double x = p * 65536.0;  // exact (a power-of-two scaling)
  double dropped = std::floor(x);
  if (x - dropped >= 0.5) dropped += 1.0;  // x - floor(x) is exact
  return kMaskRange - static_cast<std::uint32_t>(dropped);
}

// Whether dropout with probability p drops anything: p >= 2^-17, which rounds to 1 / 65536 or more.
inline bool drops(double p) { return keep_bound(p) < kMaskRange; }

}  // namespace seisoku::detail
