// CPU kernel of the fused linear epilogue: one pass over z (N, F) adding the bias, applying
// the activation and the dropout mask (drawn, never stored: the 16-bit mask draws of
// for_mask_groups, the same mask as the dropout op for the same seed, offset and element
// index, element 0 of z being element e.first of the stream). The backward pass draws the same mask and differentiates the activation from the
// stored output.
#include <algorithm>
#include <cstdint>

#include "core/dispatch.hpp"
#include "kernels/nn.hpp"
#include "masked.hpp"
#include "kernels/nn_math.hpp"

namespace seisoku::cpu {

void bias_act_dropout(const Tensor& z, const Tensor& bias, const Tensor& out, const Epilogue& e) {
  const std::int64_t cols = z.shape()[1];
  const bool has_bias = bias.defined() && bias.numel() > 0;
  const bool drop = detail::drops(e.dropout_p);
  const std::int32_t bound = static_cast<std::int32_t>(drop ? detail::keep_bound(e.dropout_p) : 0u);
  detail::dispatch_float(z.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* zs = z.data_as<T>();
    const T* b = has_bias ? bias.data_as<T>() : nullptr;
    T* o = out.data_as<T>();
    const T slope = static_cast<T>(e.slope), scale = static_cast<T>(e.dropout_scale);
    detail::dispatch_activation(e.activation, [&](auto a) {
      constexpr Activation act = decltype(a)::value;
      // Elements [first, first + count) row piece by row piece, so that the bias index is the
      // column and each piece is one loop the compiler vectorizes.
      auto run = [=](std::int64_t first, std::int64_t count, const std::uint16_t* draws) {
        // Locals, not the closure's members: stores through T* could alias those, which would
        // force a reload per element and keep the loops scalar.
        const T sl = slope, sc = scale;
        const std::int32_t bd = bound;
        for (std::int64_t i = first, end = first + count; i < end;) {
          const std::int64_t col = i % cols, len = std::min(end - i, cols - col);
          const T* zi = zs + i;
          T* oi = o + i;
          const T* bi = has_bias ? b + col : nullptr;
          if (draws != nullptr) {
            const std::uint16_t* hi = draws + (i - first);
            if (has_bias) {
              for (std::int64_t k = 0; k < len; ++k) {
                const T v = detail::act_forward(zi[k] + bi[k], act, sl) * sc;  // formed, then selected
                oi[k] = static_cast<std::int32_t>(hi[k]) < bd ? v : T(0);
              }
            } else {
              for (std::int64_t k = 0; k < len; ++k) {
                const T v = detail::act_forward(zi[k], act, sl) * sc;
                oi[k] = static_cast<std::int32_t>(hi[k]) < bd ? v : T(0);
              }
            }
          } else if (has_bias) {
            for (std::int64_t k = 0; k < len; ++k) oi[k] = detail::act_forward(zi[k] + bi[k], act, sl);
          } else {
            for (std::int64_t k = 0; k < len; ++k) oi[k] = detail::act_forward(zi[k], act, sl);
          }
          i += len;
        }
      };
      if (drop) {
        for_mask_groups(z.numel(), e.seed, e.offset, run, e.first);
      } else {
        parallel_for(z.numel(), [=](std::int64_t i0, std::int64_t i1) { run(i0, i1 - i0, nullptr); });
      }
    });
  });
}

void bias_act_dropout_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_z, const Epilogue& e) {
  const bool drop = detail::drops(e.dropout_p);
  const std::int32_t bound = static_cast<std::int32_t>(drop ? detail::keep_bound(e.dropout_p) : 0u);
  detail::dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = grad_out.data_as<T>();
    const T* ys = y.data_as<T>();
    T* gz = grad_z.data_as<T>();
    const T slope = static_cast<T>(e.slope), scale = static_cast<T>(e.dropout_scale);
    const T inv_scale = static_cast<T>(1.0 / e.dropout_scale);
    detail::dispatch_activation(e.activation, [&](auto a) {
      constexpr Activation act = decltype(a)::value;
      if (drop) {
        for_mask_groups(y.numel(), e.seed, e.offset, [=](std::int64_t first, std::int64_t count, const std::uint16_t* h) {
          const T* gi = g + first;
          const T* yi = ys + first;
          T* out = gz + first;
          const T sl = slope, sc = scale, inv = inv_scale;  // locals: see bias_act_dropout
          const std::int32_t bd = bound;
          for (std::int64_t k = 0; k < count; ++k) {
            const T v = gi[k] * sc * detail::act_derivative(yi[k] * inv, act, sl);
            out[k] = static_cast<std::int32_t>(h[k]) < bd ? v : T(0);
          }
        }, e.first);
      } else {
        parallel_for(y.numel(), [=](std::int64_t i0, std::int64_t i1) {
          const T sl = slope;
          for (std::int64_t i = i0; i < i1; ++i) gz[i] = g[i] * detail::act_derivative(ys[i], act, sl);
        });
      }
    });
  });
}

}  // namespace seisoku::cpu
