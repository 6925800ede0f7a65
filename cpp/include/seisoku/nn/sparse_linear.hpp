#pragma once
// A fully connected layer with a compressed sparse weight (a pruned Linear): y = dropout(act(
// x W^T + b)) as Linear computes it, W kept as its nonzero values in compressed sparse rows.
// Only the values (and the bias) are parameters, so training fine-tunes the kept weights and
// the pruned ones stay exactly zero without masks.
#include <cstdint>
#include <memory>

#include "seisoku/nn/layers.hpp"
#include "seisoku/sparse_linear.hpp"

namespace seisoku::nn {

struct SparseLinearOptions {
  Activation activation = Activation::identity;
  double slope = 0.01;   // leaky_relu negative slope
  double dropout = 0.0;  // probability of dropping an output unit in training, in [0, 1)
  DropoutMode dropout_mode = DropoutMode::inverted;
};

class SEISOKU_API SparseLinear : public Module {
 public:
  // pattern: where W's nonzeros sit (out_features x in_features; see sparse_pattern); values:
  // a Parameter of shape (nnz,) (regularized like a weight); bias: (out_features,) or null.
  SparseLinear(SparsePattern pattern, ParameterPtr values, ParameterPtr bias = nullptr,
               const SparseLinearOptions& options = {}, std::shared_ptr<Generator> generator = nullptr);
  // The nonzeros of a Linear's weight (a NaN or infinite entry throws), a copy of its bias and
  // its activation, dropout and generator; on the Linear's device.
  static std::shared_ptr<SparseLinear> from_linear(const Linear& linear);
  // The equivalent dense Linear (copies of the weight and bias).
  std::shared_ptr<Linear> to_linear() const;

  Tensor forward(const Tensor& x) override;
  Tensor backward(const Tensor& grad, bool need_input_grad = true) override;
  const char* type_name() const override { return "SparseLinear"; }

  std::int64_t in_features() const { return pattern_.cols; }
  std::int64_t out_features() const { return pattern_.rows; }
  std::int64_t nnz() const { return pattern_.nnz(); }
  const SparsePattern& pattern() const { return pattern_; }
  const SparseLinearOptions& options() const { return options_; }
  const ParameterPtr& values() const { return values_; }
  const ParameterPtr& bias() const { return bias_; }
  // The dense weight (out_features, in_features), zeros where pruned, on the values' device.
  Tensor dense_weight() const;
  const std::shared_ptr<Generator>& generator() const { return gen_; }
  void set_generator(std::shared_ptr<Generator> generator) { gen_ = std::move(generator); }
  // The row of the whole batch that the input's row 0 is (default 0), as Linear::first_row: the
  // dropout mask of row i is that of row first_row + i of the batch.
  std::uint64_t first_row() const { return first_row_; }
  void set_first_row(std::uint64_t row) { first_row_ = row; }

 protected:
  void release_own_buffers() override;

 private:
  const SparsePattern& pattern_on(const Tensor& like);  // the pattern on like's device

  SparsePattern pattern_;
  SparsePattern placed_;  // pattern_ on the device of the last forward (CPU: pattern_ itself)
  SparseLinearOptions options_;
  std::uint64_t first_row_ = 0;
  std::shared_ptr<Generator> gen_;
  ParameterPtr values_, bias_;
  Tensor x_, y_;
  Epilogue epilogue_;
  double eval_factor_ = 1.0;
};

}  // namespace seisoku::nn
