// Sequential, MultiHead and AutoEncoder.
#include <string>
#include <unordered_set>

#include "core/check.hpp"
#include "nn/common.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/nn/containers.hpp"

namespace seisoku::nn {
namespace {

// Adds m and its descendants to `seen`; fails when one of them is already there: a module keeps
// one forward's state, so it can appear only once on a model's path.
void claim(std::unordered_set<const Module*>& seen, const Module& m, const char* op) {
  std::vector<const Module*> all{&m};
  for (const auto& entry : m.named_descendants()) all.push_back(entry.second.get());
  for (const Module* p : all)
    if (!seen.insert(p).second)
      detail::fail(op, std::string("a ") + p->type_name() +
                           " appears twice in the model: a module keeps one forward's state, so it can be used once "
                           "(share parameters instead, e.g. Linear(weight=...))");
}

}  // namespace

// ---- Sequential ----

Sequential::Sequential(std::vector<ModulePtr> modules) {
  for (ModulePtr& m : modules) append(std::move(m));
}

Sequential& Sequential::append(ModulePtr module) {
  if (!module) detail::fail("Sequential", "argument 'module' must be a module, got none");
  if (module->contains(this)) detail::fail("Sequential", "the module contains this Sequential: a model cannot contain itself");
  std::unordered_set<const Module*> seen{this};
  for (const auto& entry : named_descendants()) seen.insert(entry.second.get());
  claim(seen, *module, "Sequential");
  register_module(std::to_string(layers_.size()), module, false);
  layers_.push_back(std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const ModulePtr& m : layers_) h = m->forward(h);
  return h;
}

Tensor Sequential::backward(const Tensor& grad, bool need_input_grad) {
  Tensor g = grad;
  for (std::size_t i = layers_.size(); i-- > 0;) g = layers_[i]->backward(g, need_input_grad || i > 0);
  return g;
}

// ---- MultiHead ----

MultiHead::MultiHead(ModulePtr trunk, std::vector<std::pair<std::string, ModulePtr>> heads)
    : trunk_(std::move(trunk)), heads_(std::move(heads)) {
  if (!trunk_) detail::fail("MultiHead", "argument 'trunk' must be a module, got none");
  if (heads_.empty()) detail::fail("MultiHead", "argument 'heads' must name at least one head");
  register_module("trunk", trunk_, false);
  std::unordered_set<std::string> names;
  std::unordered_set<const Module*> seen{this};
  claim(seen, *trunk_, "MultiHead");
  for (const auto& [name, head] : heads_) {
    if (!head) detail::fail("MultiHead", "head '" + name + "' is not a module");
    claim(seen, *head, "MultiHead");
    if (name == "trunk" || !names.insert(name).second)
      detail::fail("MultiHead", "head names must be unique and not 'trunk', got '" + name + "'");
    register_module(name, head, false);  // checks the name
  }
}

HeadOutputs MultiHead::forward_heads(const Tensor& x) {
  const Tensor h = trunk_->forward(x);
  HeadOutputs out;
  for (const auto& [name, head] : heads_) out.emplace_back(name, head->forward(h));
  return out;
}

Tensor MultiHead::backward_heads(const HeadOutputs& grads, bool need_input_grad) {
  for (const auto& entry : grads) {
    bool known = false;
    for (const auto& head : heads_) known = known || head.first == entry.first;
    if (!known) detail::fail("MultiHead", "backward got a gradient for unknown head '" + entry.first + "'");
  }
  Tensor total;
  for (const auto& [name, head] : heads_) {
    for (const auto& [gname, g] : grads) {
      if (gname != name) continue;
      const Tensor gh = head->backward(g, true);
      if (!total.defined()) {
        total = buffers_.like(0, gh.shape(), gh);
        copy(gh, total);  // a head may hand back the caller's own tensor
      } else {
        axpy(1.0, gh, total);
      }
    }
  }
  if (!total.defined()) return Tensor();
  return trunk_->backward(total, need_input_grad);
}

Tensor MultiHead::forward(const Tensor&) {
  detail::fail("MultiHead", "forward gives one output per head: call forward_heads (Python: forward returns a dict)");
}

Tensor MultiHead::backward(const Tensor&, bool) {
  detail::fail("MultiHead", "backward takes one gradient per head: call backward_heads (Python: pass a dict)");
}

// ---- AutoEncoder ----

AutoEncoder::AutoEncoder(const std::vector<std::int64_t>& sizes, const AutoEncoderOptions& options,
                         std::shared_ptr<Generator> generator) {
  if (sizes.size() < 2)
    detail::fail("AutoEncoder", "argument 'sizes' needs at least inputs and a code size, got " +
                                    std::to_string(sizes.size()) + " size(s)");
  noise_ = std::make_shared<GaussianNoise>(options.noise_std, generator);
  LinearOptions layer;
  layer.activation = options.activation;
  layer.slope = options.slope;
  layer.dtype = options.dtype;
  layer.device = options.device;
  layer.device_index = options.device_index;
  std::vector<std::shared_ptr<Linear>> encoders;
  encoder_ = std::make_shared<Sequential>();
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    encoders.push_back(std::make_shared<Linear>(sizes[i], sizes[i + 1], layer, generator));
    encoder_->append(encoders.back());
  }
  decoder_ = std::make_shared<Sequential>();
  for (std::size_t i = encoders.size(); i-- > 0;) {
    const Activation act = i == 0 ? options.output_activation : options.activation;
    if (options.tied) {
      decoder_->append(std::make_shared<TiedLinear>(encoders[i], true, act, options.slope));
    } else {
      LinearOptions out = layer;
      out.activation = act;
      decoder_->append(std::make_shared<Linear>(sizes[i + 1], sizes[i], out, generator));
    }
  }
  attach();
}

AutoEncoder::AutoEncoder(std::shared_ptr<Sequential> encoder, std::shared_ptr<Sequential> decoder,
                         std::shared_ptr<GaussianNoise> noise)
    : noise_(std::move(noise)), encoder_(std::move(encoder)), decoder_(std::move(decoder)) {
  if (!encoder_ || !decoder_) detail::fail("AutoEncoder", "arguments 'encoder' and 'decoder' must be Sequential models");
  if (!noise_) noise_ = std::make_shared<GaussianNoise>(0.0);
  attach();
}

void AutoEncoder::attach() {
  register_module("noise", noise_, false);
  register_module("encoder", encoder_, false);
  register_module("decoder", decoder_, false);
}

Tensor AutoEncoder::encode(const Tensor& x) {
  if (training_) detail::fail("AutoEncoder", "encode runs the encoder: call it in evaluation mode (eval()), not between "
                                             "a training forward and its backward");
  return encoder_->forward(x);
}

Tensor AutoEncoder::forward(const Tensor& x) { return decoder_->forward(encoder_->forward(noise_->forward(x))); }

Tensor AutoEncoder::backward(const Tensor& grad, bool need_input_grad) {
  return encoder_->backward(decoder_->backward(grad, true), need_input_grad);
}

}  // namespace seisoku::nn
