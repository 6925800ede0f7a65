// SparseLinear: a pruned Linear kept as compressed sparse rows (seisoku/sparse_linear.hpp for
// the products). Forward, backward and the evaluation rules follow Linear's.
#include "seisoku/nn/sparse_linear.hpp"

#include <string>

#include "core/check.hpp"
#include "nn/common.hpp"
#include "seisoku/elementwise.hpp"

namespace seisoku::nn {
namespace {

enum Buffer : std::size_t { kY, kScaled, kGradZ, kGradX };

}  // namespace

SparseLinear::SparseLinear(SparsePattern pattern, ParameterPtr values, ParameterPtr bias,
                           const SparseLinearOptions& options, std::shared_ptr<Generator> generator)
    : pattern_(std::move(pattern)), options_(options), gen_(std::move(generator)) {
  const char* op = "SparseLinear";
  if (!pattern_.row_ptr.defined() || !pattern_.t_pos.defined() || pattern_.rows < 1 || pattern_.cols < 1)
    detail::fail(op, "argument 'pattern' must be a complete sparse pattern (see sparse_pattern)");
  check_probability(op, "dropout", options.dropout);
  check_slope(op, options.slope);
  check_weight(op, values, {pattern_.nnz()}, "values");
  if (bias) {
    check_weight(op, bias, {pattern_.rows}, "bias");
    detail::check_same_dtype(op, "values", values->value(), "bias", bias->value());
    detail::check_same_device(op, "values", values->value(), "bias", bias->value());
  }
  pattern_ = pattern_.to(Device::cpu);
  values_ = std::move(values);
  bias_ = std::move(bias);
  register_parameter("values", values_, false);
  if (bias_) register_parameter("bias", bias_, false);
}

std::shared_ptr<SparseLinear> SparseLinear::from_linear(const Linear& linear) {
  const Tensor& w = linear.weight()->value();
  Tensor values;
  SparsePattern pattern = sparse_from_dense(w, &values);
  auto v = std::make_shared<Parameter>(std::move(values), linear.weight()->name, linear.weight()->regularize);
  v->name = "values";
  ParameterPtr b;
  if (linear.bias()) {
    const Tensor& bv = linear.bias()->value();
    b = std::make_shared<Parameter>(bv.to(bv.device(), bv.device_index()), linear.bias()->name,
                                    linear.bias()->regularize);
  }
  const LinearOptions& lo = linear.options();
  SparseLinearOptions o;
  o.activation = lo.activation;
  o.slope = lo.slope;
  o.dropout = lo.dropout;
  o.dropout_mode = lo.dropout_mode;
  auto layer = std::make_shared<SparseLinear>(std::move(pattern), std::move(v), std::move(b), o, linear.generator());
  layer->set_training(linear.training());
  return layer;
}

Tensor SparseLinear::dense_weight() const {
  const Tensor& v = values_->value();
  Tensor w = Tensor::empty({pattern_.rows, pattern_.cols}, v.dtype(), v.device(), v.device_index());
  sparse_to_dense(pattern_.to(v.device(), v.device_index()), v, w);
  return w;
}

std::shared_ptr<Linear> SparseLinear::to_linear() const {
  LinearOptions o;
  o.activation = options_.activation;
  o.slope = options_.slope;
  o.dropout = options_.dropout;
  o.dropout_mode = options_.dropout_mode;
  o.bias = bias_ != nullptr;
  o.dtype = values_->value().dtype();
  o.device = values_->value().device();
  o.device_index = values_->value().device_index();
  auto w = std::make_shared<Parameter>(dense_weight(), "weight", values_->regularize);
  ParameterPtr b;
  if (bias_) {
    const Tensor& bv = bias_->value();
    b = std::make_shared<Parameter>(bv.to(bv.device(), bv.device_index()), bias_->name, bias_->regularize);
  }
  auto layer = std::make_shared<Linear>(pattern_.cols, pattern_.rows, o, gen_, std::move(w), std::move(b));
  layer->set_training(training_);
  return layer;
}

const SparsePattern& SparseLinear::pattern_on(const Tensor& like) {
  if (!like.is_cuda()) return pattern_;
  if (!placed_.row_ptr.defined() || !placed_.row_ptr.is_cuda() || placed_.device_index() != like.device_index())
    placed_ = pattern_.to(like.device(), like.device_index());
  return placed_;
}

Tensor SparseLinear::forward(const Tensor& x) {
  const char* op = "SparseLinear";
  if (!x.defined()) detail::fail(op, "x is missing");
  if (x.dim() != 2) detail::fail(op, "x must be 2-D, got shape " + shape_str(x.shape()));
  if (x.shape()[1] != pattern_.cols)
    detail::fail(op, "x must have " + std::to_string(pattern_.cols) + " features (in_features), got shape " +
                         shape_str(x.shape()));
  double factor = 1.0;
  const Epilogue e = linear_epilogue(options_.activation, options_.slope, options_.dropout, options_.dropout_mode,
                                     training_, gen_, first_row_ * static_cast<std::uint64_t>(pattern_.rows),
                                     &factor);
  Tensor y = buffers_.like(kY, {x.shape()[0], pattern_.rows}, x);
  sparse_linear(x, pattern_on(x), values_->value(), bias_ ? bias_->value() : Tensor(), y, e);
  Tensor result = eval_scaled(buffers_, kScaled, y, factor);
  x_ = x;
  y_ = y;
  epilogue_ = e;
  eval_factor_ = factor;
  return result;
}

Tensor SparseLinear::backward(const Tensor& grad, bool need_input_grad) {
  if (!y_.defined()) detail::fail("SparseLinear", "backward needs a forward first");
  const Tensor grad_z = epilogue_input_grad(buffers_, kScaled, kGradZ, grad, y_, epilogue_, eval_factor_);
  Tensor grad_x = need_input_grad ? buffers_.like(kGradX, x_.shape(), x_) : Tensor();
  GradWrite write({values_.get(), bias_.get()});
  sparse_linear_backward(grad_z, x_, pattern_on(x_), values_->value(), grad_x, values_->grad_memory(),
                         bias_ ? bias_->grad_memory() : Tensor(), write.accumulate());
  write.commit();
  return grad_x;
}

void SparseLinear::release_own_buffers() {
  x_ = Tensor();
  y_ = Tensor();
  placed_ = SparsePattern();
}

}  // namespace seisoku::nn
