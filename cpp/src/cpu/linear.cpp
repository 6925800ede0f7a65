// CPU kernel of the fused linear epilogue: one pass over z (N, F) adding the bias, applying
// the activation and the dropout mask (drawn, never stored). The backward pass draws the
// same mask and differentiates the activation from the stored output.
#include <cstdint>

#include "dispatch.hpp"
#include "kernels_nn.hpp"
#include "masked.hpp"
#include "nn_math.hpp"

namespace seisoku::cpu {

void bias_act_dropout(const Tensor& z, const Tensor& bias, const Tensor& out, const Epilogue& e) {
  const std::int64_t cols = z.shape()[1];
  const bool has_bias = bias.defined() && bias.numel() > 0;
  const bool drop = detail::drops(e.dropout_p);
  const std::uint32_t thr = drop ? detail::keep_threshold(e.dropout_p) : 0u;
  detail::dispatch_float(z.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* zs = z.data_as<T>();
    const T* b = has_bias ? bias.data_as<T>() : nullptr;
    T* o = out.data_as<T>();
    const T slope = static_cast<T>(e.slope), scale = static_cast<T>(e.dropout_scale);
    const Activation act = e.activation;
    auto value = [=](std::int64_t i) {
      const T v = has_bias ? zs[i] + b[i % cols] : zs[i];
      return detail::act_forward(v, act, slope);
    };
    if (drop) {
      for_each_word(z.numel(), e.seed, e.offset,
                    [=](std::int64_t i, std::uint32_t w) { o[i] = w < thr ? value(i) * scale : T(0); });
    } else {
      parallel_for(z.numel(), [=](std::int64_t i0, std::int64_t i1) {
        for (std::int64_t i = i0; i < i1; ++i) o[i] = value(i);
      });
    }
  });
}

void bias_act_dropout_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_z, const Epilogue& e) {
  const bool drop = detail::drops(e.dropout_p);
  const std::uint32_t thr = drop ? detail::keep_threshold(e.dropout_p) : 0u;
  detail::dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = grad_out.data_as<T>();
    const T* ys = y.data_as<T>();
    T* gz = grad_z.data_as<T>();
    const T slope = static_cast<T>(e.slope), scale = static_cast<T>(e.dropout_scale);
    const T inv_scale = static_cast<T>(1.0 / e.dropout_scale);
    const Activation act = e.activation;
    if (drop) {
      for_each_word(y.numel(), e.seed, e.offset, [=](std::int64_t i, std::uint32_t w) {
        gz[i] = w < thr ? g[i] * scale * detail::act_derivative(ys[i] * inv_scale, act, slope) : T(0);
      });
    } else {
      parallel_for(y.numel(), [=](std::int64_t i0, std::int64_t i1) {
        for (std::int64_t i = i0; i < i1; ++i) gz[i] = g[i] * detail::act_derivative(ys[i], act, slope);
      });
    }
  });
}

}  // namespace seisoku::cpu
