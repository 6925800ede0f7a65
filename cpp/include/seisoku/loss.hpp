#pragma once
// Loss functions, each one fused op: the weighted mean loss and, in the same pass, its
// gradient with respect to the input. Inputs are float32 or float64 with the batch on axis
// 0 (N > 0 samples).
//
// Common arguments:
//   weight      per-sample weights (N,), same dtype as the input, or an undefined Tensor
//               (Tensor{}) for all ones. The reduced loss is sum_i w_i l_i / sum_i w_i.
//               On the CPU weights must be finite and >= 0 with a positive sum
//               (invalid_argument otherwise); GPU values are not checked (a zero sum gives NaN).
//   loss        output, 1 element, same dtype as the input.
//   grad        output, same shape and dtype as the input: d(loss)/d(input); Tensor{} to skip.
//   per_sample  output (N,), same dtype as the input: the unweighted per-sample losses l_i;
//               Tensor{} to skip.
// Outputs must not overlap the inputs or each other (invalid_argument). The batch reduction
// is in float64 and in a fixed order, so results do not depend on the thread count.
#include <cstdint>
#include <string>

#include "seisoku/tensor.hpp"

namespace seisoku {

// Label-smoothing target of cross_entropy with epsilon = label_smoothing and K classes.
enum class SmoothingConvention : std::uint8_t {
  lecture,  // true class 1 - eps, every other class eps / (K - 1) (needs K >= 2 when eps > 0)
  uniform,  // true class 1 - eps + eps / K, every other class eps / K (PyTorch's)
};

// Parses "lecture" or "uniform"; throws invalid_argument naming `op` otherwise.
SEISOKU_API SmoothingConvention smoothing_convention_from_name(const char* op, const std::string& name);

// Softmax cross-entropy of logits (N, K) against class indices target (N,) (int32 or int64,
// in [0, K)); l_i = -sum_k q_ik log softmax(logits_i)_k with q the smoothed one-hot target
// (label_smoothing in [0, 1)); grad = (softmax - q) * w_i / sum(w). A target outside [0, K)
// is an invalid_argument naming the first such row, on either device. The CPU finds it
// before writing anything; the GPU kernel marks it while it computes (that row's outputs are
// NaN, nothing is accessed out of bounds), so a CUDA call ends with one 8-byte
// device-to-host copy, which waits for the loss kernels to finish.
SEISOKU_API void cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                               const Tensor& grad = Tensor{}, const Tensor& per_sample = Tensor{},
                               double label_smoothing = 0.0,
                               SmoothingConvention convention = SmoothingConvention::lecture);

// Mean squared error of pred against target (same shape (N, ...)); l_i = mean over the
// sample's elements of (pred - target)^2; grad is d(loss)/d(pred).
SEISOKU_API void mse_loss(const Tensor& pred, const Tensor& target, const Tensor& weight, const Tensor& loss,
                          const Tensor& grad = Tensor{}, const Tensor& per_sample = Tensor{});

// Binary cross-entropy on logits against targets in [0, 1] (same shape (N, ...)), in the
// stable form max(x, 0) - x t + log1p(exp(-|x|)); l_i = mean over the sample's elements;
// grad = (sigmoid(x) - t) / elements_per_sample * w_i / sum(w).
SEISOKU_API void bce_with_logits(const Tensor& logits, const Tensor& target, const Tensor& weight, const Tensor& loss,
                                 const Tensor& grad = Tensor{}, const Tensor& per_sample = Tensor{});

// Distillation loss KL(softmax(teacher / T) || softmax(student / T)) per sample (both (N, K)),
// times T^2 when scale_t2 (Hinton et al. 2015); grad (student only) =
// (T if scale_t2 else 1 / T) * (softmax(student / T) - softmax(teacher / T)) * w_i / sum(w).
SEISOKU_API void kl_div_softened(const Tensor& student_logits, const Tensor& teacher_logits, double temperature,
                                 const Tensor& weight, const Tensor& loss, const Tensor& grad = Tensor{},
                                 const Tensor& per_sample = Tensor{}, bool scale_t2 = true);

}  // namespace seisoku
