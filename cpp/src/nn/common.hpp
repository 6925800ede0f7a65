#pragma once
// Argument checks and parameter factories shared by the layer constructors.
#include <cmath>
#include <memory>
#include <string>

#include "core/check.hpp"
#include "core/dispatch.hpp"
#include "seisoku/activation.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/linear.hpp"
#include "seisoku/nn/layers.hpp"
#include "seisoku/nn/parameter.hpp"
#include "seisoku/random.hpp"

namespace seisoku::nn {

inline std::string number(double v) {
  std::string s = std::to_string(v);
  if (s.find('.') != std::string::npos) {
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

inline void check_positive(const char* op, const char* name, std::int64_t value) {
  if (value < 1) detail::fail(op, std::string("argument '") + name + "' must be >= 1, got " + std::to_string(value));
}

inline void check_probability(const char* op, const char* name, double p) {
  if (!(p >= 0.0 && p < 1.0))
    detail::fail(op, std::string("argument '") + name + "' must be a probability in [0, 1), got " + number(p));
}

inline void check_slope(const char* op, double slope) {
  if (!(slope >= 0.0 && std::isfinite(slope)))
    detail::fail(op, "argument 'slope' must be finite and >= 0, got " + number(slope));
}

// A parameter given to share: a float tensor of the expected shape.
inline void check_weight(const char* op, const ParameterPtr& p, const Shape& shape, const char* name = "weight") {
  if (!p) detail::fail(op, std::string("argument '") + name + "' is missing");
  const Tensor& v = p->value();
  if (v.shape() != shape)
    detail::fail(op, std::string("shared ") + name + " has shape " + shape_str(v.shape()) + ", expected " +
                         shape_str(shape));
  if (v.dtype() != DType::float32 && v.dtype() != DType::float64)
    detail::fail(op, std::string("shared ") + name + " must be float32 or float64, got " + dtype_name(v.dtype()));
}

// A new weight initialised from the generator (null: the process-wide one): He for the relu
// family, Glorot otherwise, unless `init` names one.
inline ParameterPtr new_weight(const Shape& shape, Init init, Activation act, DType dtype, Device device,
                               int device_index, const std::shared_ptr<Generator>& gen) {
  if (dtype != DType::float32 && dtype != DType::float64)
    detail::fail("init", std::string("argument 'dtype' must be float32 or float64, got ") + dtype_name(dtype));
  Tensor w = Tensor::empty(shape, dtype, device, device_index);
  if (init == Init::automatic)
    init = act == Activation::relu || act == Activation::leaky_relu ? Init::he : Init::glorot;
  Generator& g = generator_or_default(gen);
  init == Init::he ? he_normal(w, g) : glorot_uniform(w, g);
  return std::make_shared<Parameter>(std::move(w), "weight");
}

// A zero bias of `n` features like `like` (1-D: not penalized).
inline ParameterPtr new_bias(std::int64_t n, const Tensor& like) {
  return std::make_shared<Parameter>(Tensor::zeros({n}, like.dtype(), like.device(), like.device_index()), "bias");
}

// The value of a 1-element float tensor (0 for an undefined one); copies a CUDA tensor to the host.
inline double scalar_value(const Tensor& t) {
  if (!t.defined()) return 0.0;
  const Tensor host = t.is_cuda() ? t.to(Device::cpu) : t;
  return detail::dispatch_float(host.dtype(), [&](auto zero) {
    return static_cast<double>(*host.data_as<decltype(zero)>());
  });
}

// An epilogue of bias and activation only.
inline Epilogue plain_epilogue(Activation act, double slope) {
  Epilogue e;
  e.activation = act;
  e.slope = slope;
  return e;
}

// The fused epilogue of a Linear-like layer's forward: activation, and in training with dropout
// p > 0 a mask drawn at the generator's next offset, output element i of the batch being element
// first + i of the stream. *eval_factor: 1 - p for lecture-mode dropout out of training (the
// output is scaled by it), else 1.
inline Epilogue linear_epilogue(Activation act, double slope, double p, DropoutMode mode, bool training,
                                const std::shared_ptr<Generator>& gen, std::uint64_t first, double* eval_factor) {
  Epilogue e = plain_epilogue(act, slope);
  if (training && p > 0) {
    Generator& g = generator_or_default(gen);
    e.dropout_p = p;
    e.dropout_scale = mode == DropoutMode::inverted ? 1.0 / (1.0 - p) : 1.0;
    e.seed = g.seed();
    e.offset = g.next_offset();
    e.first = first;
  }
  *eval_factor = !training && mode == DropoutMode::lecture ? 1.0 - p : 1.0;
  return e;
}

// t, or eval_factor * t in buffer `key` when the factor is not 1 (a linear_epilogue layer's
// output, and the gradient its backward receives).
inline Tensor eval_scaled(BufferPool& buffers, std::size_t key, const Tensor& t, double eval_factor) {
  if (eval_factor == 1.0) return t;
  Tensor out = buffers.like(key, t.shape(), t);
  scale(eval_factor, t, out);
  return out;
}

// The gradient at the product, before the fused epilogue e (bias, activation, dropout) whose
// output was y, from the gradient of the layer's output: scaled back by eval_factor, then
// through the epilogue (into buffers `scaled_key` and `grad_key`; grad itself where both are
// identities).
inline Tensor epilogue_input_grad(BufferPool& buffers, std::size_t scaled_key, std::size_t grad_key,
                                  const Tensor& grad, const Tensor& y, const Epilogue& e, double eval_factor) {
  const Tensor g = eval_scaled(buffers, scaled_key, grad, eval_factor);
  if (e.activation == Activation::identity && !(e.dropout_p > 0)) return g;
  Tensor grad_z = buffers.like(grad_key, y.shape(), y);
  bias_act_dropout_backward(g, y, grad_z, e);
  return grad_z;
}

}  // namespace seisoku::nn
