// CUDA twin of the fused linear epilogue: one thread per Philox block of 8 consecutive
// stream elements (z's element 0 is stream element e.first) of z (N, F) (16-bit mask draws, detail::mask_draw, as the dropout op), bias column =
// index % F; the backward draws the same mask.
#include <cstdint>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/nn.hpp"
#include "kernels/nn_math.hpp"
#include "seisoku/philox.hpp"

namespace seisoku::gpu {
namespace {

// Element i of z is stream element first + i: thread b takes stream block first / 8 + b, whose
// elements are z's i = 8 b + k - first % 8 (those in [0, n)).
template <class T>
__global__ void epilogue_kernel(const T* z, const T* bias, T* out, std::int64_t n, std::int64_t cols, Activation act,
                                T slope, bool drop, std::uint32_t bound, std::uint64_t seed, std::uint64_t offset,
                                T scale, std::uint64_t first) {
  const std::int64_t shift = drop ? static_cast<std::int64_t>(first % 8) : 0;
  const std::int64_t blocks = (n + shift + 7) / 8;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    philox::Block r{{0u, 0u, 0u, 0u}};
    if (drop) r = philox::draw(seed, offset, first / 8 + static_cast<std::uint64_t>(b));
    for (int k = 0; k < 8; ++k) {
      const std::int64_t i = b * 8 + k - shift;
      if (i < 0 || i >= n) continue;
      const T v = detail::act_forward(bias ? z[i] + bias[i % cols] : z[i], act, slope);
      out[i] = drop ? (detail::mask_draw(r, k) < bound ? v * scale : T(0)) : v;
    }
  }
}

template <class T>
__global__ void epilogue_backward_kernel(const T* g, const T* y, T* gz, std::int64_t n, Activation act, T slope,
                                         bool drop, std::uint32_t bound, std::uint64_t seed, std::uint64_t offset,
                                         T scale, T inv_scale, std::uint64_t first) {
  const std::int64_t shift = drop ? static_cast<std::int64_t>(first % 8) : 0;
  const std::int64_t blocks = (n + shift + 7) / 8;
  for (std::int64_t b = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; b < blocks; b += std::int64_t{gridDim.x} * blockDim.x) {
    philox::Block r{{0u, 0u, 0u, 0u}};
    if (drop) r = philox::draw(seed, offset, first / 8 + static_cast<std::uint64_t>(b));
    for (int k = 0; k < 8; ++k) {
      const std::int64_t i = b * 8 + k - shift;
      if (i < 0 || i >= n) continue;
      if (drop) {
        gz[i] = detail::mask_draw(r, k) < bound ? g[i] * scale * detail::act_derivative(y[i] * inv_scale, act, slope) : T(0);
      } else {
        gz[i] = g[i] * detail::act_derivative(y[i], act, slope);
      }
    }
  }
}

}  // namespace

void bias_act_dropout(const Tensor& z, const Tensor& bias, const Tensor& out, const Epilogue& e) {
  const std::int64_t n = z.numel();
  if (n == 0) return;
  DeviceGuard guard(z.device_index());
  const bool drop = detail::drops(e.dropout_p);
  const std::uint32_t bound = drop ? detail::keep_bound(e.dropout_p) : 0u;
  detail::dispatch_float(z.dtype(), [&](auto tag) {
    using T = decltype(tag);
    epilogue_kernel<<<grid_for((n + 7) / 8 + 1), kThreads, 0, stream()>>>(
        z.data_as<T>(), bias.defined() && bias.numel() > 0 ? bias.data_as<T>() : nullptr, out.data_as<T>(), n, z.shape()[1], e.activation,
        static_cast<T>(e.slope), drop, bound, e.seed, e.offset, static_cast<T>(e.dropout_scale), e.first);
  });
  check_launch();
}

void bias_act_dropout_backward(const Tensor& grad_out, const Tensor& y, const Tensor& grad_z, const Epilogue& e) {
  const std::int64_t n = y.numel();
  if (n == 0) return;
  DeviceGuard guard(y.device_index());
  const bool drop = detail::drops(e.dropout_p);
  const std::uint32_t bound = drop ? detail::keep_bound(e.dropout_p) : 0u;
  detail::dispatch_float(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    epilogue_backward_kernel<<<grid_for((n + 7) / 8 + 1), kThreads, 0, stream()>>>(
        grad_out.data_as<T>(), y.data_as<T>(), grad_z.data_as<T>(), n, e.activation, static_cast<T>(e.slope), drop, bound,
        e.seed, e.offset, static_cast<T>(e.dropout_scale), static_cast<T>(1.0 / e.dropout_scale), e.first);
  });
  check_launch();
}

}  // namespace seisoku::gpu
