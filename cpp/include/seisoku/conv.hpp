#pragma once
// 2-D convolution over NCHW tensors (float32, float64), zero padding, floor output size:
// Ho = (H + 2 pad_h - kh) / stride_h + 1, Wo likewise. Outputs are caller-provided and must
// not overlap the inputs. A default-constructed Tensor() stands for "none" (no bias, or a
// gradient not wanted).
#include <cstdint>

#include "seisoku/tensor.hpp"

namespace seisoku {

// The shape (N, O, Ho, Wo) of conv2d's output for x and weight; throws std::invalid_argument for
// inputs conv2d rejects (rank, dtypes, devices, channels, geometry).
SEISOKU_API Shape conv2d_shape(const Tensor& x, const Tensor& weight, std::int64_t stride_h, std::int64_t stride_w,
                               std::int64_t pad_h, std::int64_t pad_w);
// out (N, O, Ho, Wo) = x (N, C, H, W) correlated with weight (O, C, kh, kw), plus bias (O,) or Tensor().
SEISOKU_API void conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out,
                        std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w);

// Gradients of conv2d given grad_out (N, O, Ho, Wo); each of grad_x (overwritten), grad_weight and
// grad_bias (added into when accumulate, else overwritten) may be Tensor() to skip it. Deterministic.
SEISOKU_API void conv2d_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                                 const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                                 std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h,
                                 std::int64_t pad_w, bool accumulate);

}  // namespace seisoku
