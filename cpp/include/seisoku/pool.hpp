#pragma once
// 2-D max and average pooling over NCHW tensors (float32, float64), floor output size:
// Ho = (H + 2 pad_h - kh) / stride_h + 1, Wo likewise, with pad_h <= kh / 2 and pad_w <= kw / 2
// so that every window holds at least one input element. Outputs are caller-provided and
// must not overlap the inputs.
#include <cstdint>

#include "seisoku/tensor.hpp"

namespace seisoku {

// The shape (N, C, Ho, Wo) of a pooling of x (N, C, H, W); throws std::invalid_argument, naming
// `op`, for inputs the pooling ops reject (rank, empty planes, window geometry).
SEISOKU_API Shape pool2d_shape(const char* op, const Tensor& x, std::int64_t kh, std::int64_t kw,
                               std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w);
// out (N, C, Ho, Wo) = window maxima of x (N, C, H, W); indices (int64, same shape) = h * W + w of
// each maximum in its plane. Padding never wins, ties pick the first in row-major window
// order, and a NaN in the window wins (the first NaN).
SEISOKU_API void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices, std::int64_t kh,
                            std::int64_t kw, std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h,
                            std::int64_t pad_w);

// grad_x (N, C, H, W) = grad_out routed back to the positions in indices; each input element
// sums its contributions in row-major output order (deterministic). An index outside
// [0, H * W) raises on the CPU; the CUDA kernel skips it (checking would need a host sync).
SEISOKU_API void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Tensor& grad_x);

// out = window means of x; the divisor is kh * kw when count_include_pad, else the number of
// window elements inside the input.
SEISOKU_API void avg_pool2d(const Tensor& x, const Tensor& out, std::int64_t kh, std::int64_t kw,
                            std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w,
                            bool count_include_pad);

// grad_x (N, C, H, W) of avg_pool2d given grad_out (N, C, Ho, Wo), as a deterministic gather.
SEISOKU_API void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_x, std::int64_t kh,
                                     std::int64_t kw, std::int64_t stride_h, std::int64_t stride_w,
                                     std::int64_t pad_h, std::int64_t pad_w, bool count_include_pad);

}  // namespace seisoku
