// Layer objects over the functional ops (linear, activation, dropout, noise): allocation of
// outputs and gradients with Tensor, parameters and train/eval state.
#include "seisoku/nn.hpp"

#include <cmath>
#include <unordered_set>

#include "core/check.hpp"
#include "seisoku/blas.hpp"
#include "seisoku/conv.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/linear.hpp"
#include "seisoku/mask.hpp"
#include "seisoku/pool.hpp"
#include "seisoku/reduce.hpp"

namespace seisoku::nn {
namespace {

Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device(), t.device_index()); }

std::pair<std::int64_t, std::int64_t> fans(const Tensor& w) {
  if (w.dim() < 2) detail::fail("init", "a weight needs 2 or more dimensions, got shape " + shape_str(w.shape()));
  const std::int64_t receptive = w.numel() / (w.shape()[0] * w.shape()[1]);
  return {w.shape()[1] * receptive, w.shape()[0] * receptive};
}

void check_probability(const char* op, double p) {
  if (!(p >= 0.0 && p < 1.0)) detail::fail(op, "p must be in [0, 1), got " + std::to_string(p));
}

std::shared_ptr<Generator> require(std::shared_ptr<Generator> gen, const char* op) {
  if (!gen) detail::fail(op, "a generator is required");
  return gen;
}

}  // namespace

ParameterPtr make_parameter(Tensor value, std::string name, bool regularize) {
  auto p = std::make_shared<Parameter>();
  p->grad = Tensor::zeros(value.shape(), value.dtype(), value.device(), value.device_index());
  p->value = std::move(value);
  p->name = std::move(name);
  p->regularize = regularize;
  return p;
}

void he_normal(const Tensor& weight, Generator& gen) {
  normal(weight, gen.seed(), gen.next_offset(), 0.0, std::sqrt(2.0 / static_cast<double>(fans(weight).first)));
}

void glorot_uniform(const Tensor& weight, Generator& gen) {
  const auto [fan_in, fan_out] = fans(weight);
  const double a = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  uniform(weight, gen.seed(), gen.next_offset(), -a, a);
}

OptimGroup optim_group(const std::vector<std::pair<std::string, ParameterPtr>>& params, const OptimHyper& hyper) {
  optim_check_hyper(hyper);
  OptimGroup group;
  group.hyper = hyper;
  for (const auto& [name, p] : params) {
    if (!p) detail::fail("optim_group", "parameter " + name + " is null");
    group.params.push_back(p->value);
    group.grads.push_back(p->grad);
    group.penalize.push_back(p->regularize ? 1 : 0);
    group.names.push_back(name);
  }
  optim_init_state(group);
  return group;
}

OptimGroup optim_group(const Module& module, const OptimHyper& hyper) {
  return optim_group(module.named_parameters(), hyper);
}

Module::~Module() = default;

void Module::collect(std::vector<std::pair<std::string, ParameterPtr>>&, const std::string&) const {}

std::vector<std::pair<std::string, ParameterPtr>> Module::named_parameters() const {
  std::vector<std::pair<std::string, ParameterPtr>> all, unique;
  collect(all, "");
  std::unordered_set<const Parameter*> seen;
  for (auto& entry : all)
    if (seen.insert(entry.second.get()).second) unique.push_back(entry);
  return unique;
}

std::vector<ParameterPtr> Module::parameters() const {
  std::vector<ParameterPtr> out;
  for (auto& entry : named_parameters()) out.push_back(entry.second);
  return out;
}

void Module::zero_grad() const {
  for (const ParameterPtr& p : parameters()) fill(p->grad, 0.0);
}

void WeightedModule::collect(std::vector<std::pair<std::string, ParameterPtr>>& out,
                             const std::string& prefix) const {
  out.emplace_back(prefix + "weight", weight);
  if (bias) out.emplace_back(prefix + "bias", bias);
}

// ---- Linear ----

Linear::Linear(std::int64_t in_features, std::int64_t out_features, const LinearOptions& options,
               std::shared_ptr<Generator> generator, ParameterPtr shared_weight)
    : options_(options), gen_(require(std::move(generator), "Linear")) {
  if (in_features < 1 || out_features < 1)
    detail::fail("Linear", "sizes must be >= 1, got " + std::to_string(in_features) + " and " +
                               std::to_string(out_features));
  check_probability("Linear", options.dropout);
  if (shared_weight) {
    if (shared_weight->value.shape() != Shape{out_features, in_features})
      detail::fail("Linear", "shared weight has shape " + shape_str(shared_weight->value.shape()) + ", expected " +
                                 shape_str({out_features, in_features}));
    weight = std::move(shared_weight);
  } else {
    Tensor w = Tensor::empty({out_features, in_features}, options.dtype, options.device);
    const bool relu_family = options.activation == Activation::relu || options.activation == Activation::leaky_relu;
    relu_family ? he_normal(w, *gen_) : glorot_uniform(w, *gen_);
    weight = make_parameter(std::move(w), "weight", true);
  }
  if (options.bias)
    bias = make_parameter(Tensor::zeros({out_features}, weight->value.dtype(), weight->value.device()), "bias", false);
}

Epilogue Linear::epilogue() const {
  Epilogue e;
  e.activation = options_.activation;
  e.slope = options_.slope;
  e.dropout_p = p_;
  e.dropout_scale = scale_;
  e.seed = gen_->seed();
  e.offset = offset_;
  return e;
}

Tensor Linear::forward(const Tensor& x) {
  const double p = options_.dropout;
  p_ = training_ ? p : 0.0;
  scale_ = training_ && options_.inverted && p > 0 ? 1.0 / (1.0 - p) : 1.0;
  eval_factor_ = !training_ && !options_.inverted ? 1.0 - p : 1.0;
  offset_ = p_ > 0 ? gen_->next_offset() : 0;
  const Epilogue e = epilogue();
  if (x.dim() != 2) detail::fail("linear", "x must be 2-D, got shape " + shape_str(x.shape()));
  Tensor y = Tensor::empty({x.shape()[0], weight->value.shape()[0]}, x.dtype(), x.device(), x.device_index());
  linear(x, weight->value, bias ? bias->value : Tensor(), y, e);
  x_ = x;
  y_ = y;
  if (eval_factor_ == 1.0) return y;
  Tensor scaled = empty_like(y);
  scale(eval_factor_, y, scaled);
  return scaled;
}

Tensor Linear::backward(const Tensor& grad, bool need_input_grad) {
  Tensor g = grad;
  if (eval_factor_ != 1.0) {
    g = empty_like(grad);
    scale(eval_factor_, grad, g);
  }
  Tensor grad_z = g;
  if (options_.activation != Activation::identity || p_ > 0) {
    grad_z = empty_like(y_);
    bias_act_dropout_backward(g, y_, grad_z, epilogue());
  }
  Tensor grad_x = need_input_grad ? empty_like(x_) : Tensor();
  linear_backward(grad_z, x_, weight->value, grad_x, weight->grad, bias ? bias->grad : Tensor(), true);
  return grad_x;
}

// ---- TiedLinear ----

TiedLinear::TiedLinear(const std::shared_ptr<Linear>& source, bool with_bias, Activation activation)
    : activation_(activation) {
  if (!source) detail::fail("TiedLinear", "source layer is missing");
  weight = source->weight;
  const Tensor& w = weight->value;
  if (with_bias) bias = make_parameter(Tensor::zeros({w.shape()[1]}, w.dtype(), w.device()), "bias", false);
}

Tensor TiedLinear::forward(const Tensor& x) {
  const Tensor& w = weight->value;
  if (x.dim() != 2) detail::fail("TiedLinear", "x must be 2-D, got shape " + shape_str(x.shape()));
  Tensor y = Tensor::empty({x.shape()[0], w.shape()[1]}, x.dtype(), x.device(), x.device_index());
  gemm(x, w, y);
  Epilogue e;
  e.activation = activation_;
  bias_act_dropout(y, bias ? bias->value : Tensor(), y, e);
  x_ = x;
  y_ = y;
  return y;
}

Tensor TiedLinear::backward(const Tensor& grad, bool need_input_grad) {
  Tensor grad_z = grad;
  if (activation_ != Activation::identity) {
    Epilogue e;
    e.activation = activation_;
    grad_z = empty_like(y_);
    bias_act_dropout_backward(grad, y_, grad_z, e);
  }
  gemm(x_, grad_z, weight->grad, true, false, 1.0, 1.0);
  if (bias) column_sum(grad_z, bias->grad, true);
  if (!need_input_grad) return Tensor();
  Tensor grad_x = empty_like(x_);
  gemm(grad_z, weight->value, grad_x, false, true);
  return grad_x;
}

// ---- convolution and pooling ----

namespace {
std::int64_t out_size(std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t pad) {
  return (in + 2 * pad - k) / stride + 1;
}

Shape pooled_shape(const char* op, const Tensor& x, const Window& w, std::int64_t channels) {
  if (x.dim() != 4) detail::fail(op, "x must be NCHW (4-D), got shape " + shape_str(x.shape()));
  if (w.stride_h < 1 || w.stride_w < 1)
    detail::fail(op, "strides must be >= 1, got (" + std::to_string(w.stride_h) + ", " + std::to_string(w.stride_w) + ")");
  return {x.shape()[0], channels, out_size(x.shape()[2], w.kh, w.stride_h, w.pad_h),
          out_size(x.shape()[3], w.kw, w.stride_w, w.pad_w)};
}
}  // namespace

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, const Window& window, bool with_bias,
               std::shared_ptr<Generator> generator, DType dtype, Device device, ParameterPtr shared_weight)
    : window_(window) {
  if (in_channels < 1 || out_channels < 1 || window.kh < 1 || window.kw < 1)
    detail::fail("Conv2d", "channels and kernel sizes must be >= 1");
  const Shape shape{out_channels, in_channels, window.kh, window.kw};
  if (shared_weight) {
    if (shared_weight->value.shape() != shape)
      detail::fail("Conv2d", "shared weight has shape " + shape_str(shared_weight->value.shape()) + ", expected " +
                                 shape_str(shape));
    weight = std::move(shared_weight);
  } else {
    Tensor w = Tensor::empty(shape, dtype, device);
    he_normal(w, *require(std::move(generator), "Conv2d"));
    weight = make_parameter(std::move(w), "weight", true);
  }
  if (with_bias)
    bias = make_parameter(Tensor::zeros({out_channels}, weight->value.dtype(), weight->value.device()), "bias", false);
}

Tensor Conv2d::forward(const Tensor& x) {
  const Shape shape = pooled_shape("conv2d", x, window_, weight->value.shape()[0]);
  if (shape[2] < 1 || shape[3] < 1)
    detail::fail("conv2d", "kernel larger than the padded input " + shape_str(x.shape()));
  Tensor y = Tensor::empty(shape, x.dtype(), x.device(), x.device_index());
  conv2d(x, weight->value, bias ? bias->value : Tensor(), y, window_.stride_h, window_.stride_w, window_.pad_h,
         window_.pad_w);
  x_ = x;
  return y;
}

Tensor Conv2d::backward(const Tensor& grad, bool need_input_grad) {
  Tensor grad_x = need_input_grad ? empty_like(x_) : Tensor();
  conv2d_backward(grad, x_, weight->value, grad_x, weight->grad, bias ? bias->grad : Tensor(), window_.stride_h,
                  window_.stride_w, window_.pad_h, window_.pad_w, true);
  return grad_x;
}

Tensor MaxPool2d::forward(const Tensor& x) {
  const Shape shape = pooled_shape("max_pool2d", x, window_, x.dim() == 4 ? x.shape()[1] : 0);
  Tensor y = Tensor::empty(shape, x.dtype(), x.device(), x.device_index());
  indices_ = Tensor::empty(shape, DType::int64, x.device(), x.device_index());
  max_pool2d(x, y, indices_, window_.kh, window_.kw, window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w);
  shape_ = x.shape();
  return y;
}

Tensor MaxPool2d::backward(const Tensor& grad, bool) {
  Tensor g = Tensor::empty(shape_, grad.dtype(), grad.device(), grad.device_index());
  max_pool2d_backward(grad, indices_, g);
  return g;
}

Tensor AvgPool2d::forward(const Tensor& x) {
  const Shape shape = pooled_shape("avg_pool2d", x, window_, x.dim() == 4 ? x.shape()[1] : 0);
  Tensor y = Tensor::empty(shape, x.dtype(), x.device(), x.device_index());
  avg_pool2d(x, y, window_.kh, window_.kw, window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w,
             count_include_pad_);
  x_ = x;
  return y;
}

Tensor AvgPool2d::backward(const Tensor& grad, bool) {
  Tensor g = empty_like(x_);
  avg_pool2d_backward(grad, g, window_.kh, window_.kw, window_.stride_h, window_.stride_w, window_.pad_h, window_.pad_w,
                      count_include_pad_);
  return g;
}

// ---- activations, dropout, noise, flatten ----

Tensor ActivationLayer::forward(const Tensor& x) {
  y_ = empty_like(x);
  activation(x, y_, activation_, slope_);
  return y_;
}

Tensor ActivationLayer::backward(const Tensor& grad, bool) {
  Tensor g = empty_like(grad);
  activation_backward(grad, y_, g, activation_, slope_);
  return g;
}

Dropout::Dropout(double p, std::shared_ptr<Generator> generator, bool inverted)
    : p_(p), inverted_(inverted), gen_(require(std::move(generator), "Dropout")) {
  check_probability("Dropout", p);
}

Tensor Dropout::forward(const Tensor& x) {
  Tensor y = empty_like(x);
  masked_ = training_ && p_ > 0;
  if (masked_) {
    offset_ = gen_->next_offset();
    dropout(x, y, p_, gen_->seed(), offset_, inverted_ ? 1.0 / (1.0 - p_) : 1.0);
  } else {
    scale(!training_ && !inverted_ ? 1.0 - p_ : 1.0, x, y);
  }
  return y;
}

Tensor Dropout::backward(const Tensor& grad, bool) {
  Tensor g = empty_like(grad);
  if (masked_) dropout(grad, g, p_, gen_->seed(), offset_, inverted_ ? 1.0 / (1.0 - p_) : 1.0);
  else scale(!training_ && !inverted_ ? 1.0 - p_ : 1.0, grad, g);
  return g;
}

GaussianNoise::GaussianNoise(double stddev, std::shared_ptr<Generator> generator)
    : stddev_(stddev), gen_(require(std::move(generator), "GaussianNoise")) {
  if (!(stddev >= 0.0 && std::isfinite(stddev)))
    detail::fail("GaussianNoise", "stddev must be finite and >= 0, got " + std::to_string(stddev));
}

Tensor GaussianNoise::forward(const Tensor& x) {
  if (!training_ || stddev_ == 0.0) return x;
  Tensor y = empty_like(x);
  gaussian_noise(x, y, stddev_, gen_->seed(), gen_->next_offset());
  return y;
}

Tensor GaussianNoise::backward(const Tensor& grad, bool) { return grad; }

Tensor Flatten::forward(const Tensor& x) {
  if (x.dim() < 1) detail::fail("Flatten", "x must have a batch axis, got shape " + shape_str(x.shape()));
  shape_ = x.shape();
  const std::int64_t n = x.shape()[0];
  return x.reshape({n, n == 0 ? 0 : x.numel() / n});
}

Tensor Flatten::backward(const Tensor& grad, bool) { return grad.reshape(shape_); }

// ---- Sequential ----

Sequential& Sequential::add(ModulePtr module) {
  if (!module) detail::fail("Sequential", "cannot add a null module");
  modules_.push_back(std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const ModulePtr& m : modules_) h = m->forward(h);
  return h;
}

Tensor Sequential::backward(const Tensor& grad, bool need_input_grad) {
  Tensor g = grad;
  for (std::size_t i = modules_.size(); i-- > 0;) g = modules_[i]->backward(g, need_input_grad || i > 0);
  return g;
}

void Sequential::train(bool mode) {
  training_ = mode;
  for (const ModulePtr& m : modules_) m->train(mode);
}

void Sequential::collect(std::vector<std::pair<std::string, ParameterPtr>>& out, const std::string& prefix) const {
  for (std::size_t i = 0; i < modules_.size(); ++i) modules_[i]->collect(out, prefix + std::to_string(i) + ".");
}

}  // namespace seisoku::nn
