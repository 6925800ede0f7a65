#pragma once
// Loss objects for training loops: forward(pred, target) computes the weighted mean loss and, in
// the same fused pass, its gradient with respect to pred, which backward() returns. Both results
// are kept by the loss and reused once nothing else holds them (see Module).
#include <atomic>
#include <string>

#include "seisoku/loss.hpp"
#include "seisoku/nn/module.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::nn {

class SEISOKU_API Loss {
 public:
  virtual ~Loss();
  Loss() = default;
  Loss(const Loss&) = delete;
  Loss& operator=(const Loss&) = delete;
  // The loss (a 1-element tensor of pred's dtype and device): sum_i w_i l_i / sum_i w_i, the plain
  // mean over samples without sample_weight (N,).
  virtual Tensor forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight = Tensor()) = 0;
  // d(loss)/d(pred) of the last forward.
  virtual Tensor backward();
  virtual const char* type_name() const { return "Loss"; }
  // One thread at a time (see Module::try_enter).
  bool try_enter() { return !busy_.exchange(true, std::memory_order_acquire); }
  void leave() { busy_.store(false, std::memory_order_release); }

 protected:
  // Allocates (or reuses) the loss and gradient tensors of a forward on `pred`.
  void prepare(const Tensor& pred);
  Tensor loss_, grad_;
  BufferPool buffers_;

 private:
  std::atomic<bool> busy_{false};
};

// Softmax cross-entropy on logits (N, K) with integer class targets (N,) and label smoothing
// epsilon in [0, 1) in the lecture's convention (true class 1 - eps, others eps / (K - 1)) or
// PyTorch's (uniform).
class SEISOKU_API CrossEntropyLoss : public Loss {
 public:
  explicit CrossEntropyLoss(double label_smoothing = 0.0,
                            SmoothingConvention convention = SmoothingConvention::lecture);
  Tensor forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight = Tensor()) override;
  const char* type_name() const override { return "CrossEntropyLoss"; }
  double label_smoothing() const { return smoothing_; }
  SmoothingConvention convention() const { return convention_; }

 private:
  double smoothing_;
  SmoothingConvention convention_;
};

// Mean squared error (per sample: the mean over its elements).
class SEISOKU_API MSELoss : public Loss {
 public:
  Tensor forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight = Tensor()) override;
  const char* type_name() const override { return "MSELoss"; }
};

// Binary cross-entropy on logits, targets in [0, 1].
class SEISOKU_API BCEWithLogitsLoss : public Loss {
 public:
  Tensor forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight = Tensor()) override;
  const char* type_name() const override { return "BCEWithLogitsLoss"; }
};

// KL(softmax(teacher / T) || softmax(student / T)), times T^2 when scale_t2 (Hinton et al. 2015);
// forward(student_logits, teacher_logits).
class SEISOKU_API DistillationKLLoss : public Loss {
 public:
  explicit DistillationKLLoss(double temperature = 1.0, bool scale_t2 = true);
  Tensor forward(const Tensor& pred, const Tensor& target, const Tensor& sample_weight = Tensor()) override;
  const char* type_name() const override { return "DistillationKLLoss"; }
  double temperature() const { return temperature_; }
  bool scale_t2() const { return scale_t2_; }

 private:
  double temperature_;
  bool scale_t2_;
};

}  // namespace seisoku::nn
