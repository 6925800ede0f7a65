// Parameters and the gradient rule, initialisers, the reusable result tensors and the Module
// base: registration of parameters and children, traversal, modes and penalties.
#include "seisoku/nn/module.hpp"

#include <cmath>
#include <unordered_set>

#include "core/check.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/random.hpp"

namespace seisoku::nn {

// ---- Parameter ----

Parameter::Parameter(Tensor value, std::string name_, std::optional<bool> regularize_)
    : name(std::move(name_)), regularize(regularize_.value_or(value.dim() >= 2)) {
  detail::check_defined("Parameter", "value", value);
  grad_ = Tensor::zeros(value.shape(), value.dtype(), value.device(), value.device_index());
  value_ = std::move(value);
}

void Parameter::set_value(Tensor value) {
  detail::check_defined("Parameter", "value", value);
  if (value.shape() != grad_.shape() || value.dtype() != grad_.dtype() || value.device() != grad_.device() ||
      value.device_index() != grad_.device_index()) {
    grad_ = Tensor::zeros(value.shape(), value.dtype(), value.device(), value.device_index());
    zero_marked_ = false;
  }
  value_ = std::move(value);
}

const Tensor& Parameter::grad() {
  if (zero_marked_) {
    fill(grad_, 0.0);
    zero_marked_ = false;
  }
  return grad_;
}

void Parameter::set_grad(Tensor grad) {
  const char* op = "Parameter";
  detail::check_defined(op, "grad", grad);
  detail::check_same_shape(op, "grad", grad, "value", value_);
  detail::check_same_dtype(op, "grad", grad, "value", value_);
  detail::check_same_device(op, "grad", grad, "value", value_);
  grad_ = std::move(grad);
  zero_marked_ = false;
}

void Parameter::to(Device device, int device_index) {
  if (value_.device() == device && (device == Device::cpu || value_.device_index() == device_index)) return;
  value_ = value_.to(device, device_index);
  grad_ = zero_marked_ ? Tensor::empty(grad_.shape(), grad_.dtype(), device, device_index) : grad_.to(device, device_index);
}

GradWrite::GradWrite(std::initializer_list<Parameter*> params) {
  bool all_marked = false;
  for (Parameter* p : params) {
    if (p == nullptr) continue;
    all_marked = taken_.empty() ? p->zero_marked_ : all_marked && p->zero_marked_;
    taken_.push_back(p);
  }
  accumulate_ = !all_marked;
  if (accumulate_) {
    for (Parameter* p : taken_) p->grad();  // clears the marked ones
    taken_.clear();                         // nothing to put back
  } else {
    for (Parameter* p : taken_) p->zero_marked_ = false;
  }
}

GradWrite::~GradWrite() {
  if (!committed_)
    for (Parameter* p : taken_) p->zero_marked_ = true;
}

// ---- initialisers ----

namespace {
std::pair<double, double> fans(const Tensor& w) {
  if (w.dim() < 2) detail::fail("init", "a weight needs 2 or more dimensions, got shape " + shape_str(w.shape()));
  const std::int64_t receptive = w.shape()[0] * w.shape()[1] == 0 ? 0 : w.numel() / (w.shape()[0] * w.shape()[1]);
  return {static_cast<double>(w.shape()[1] * receptive), static_cast<double>(w.shape()[0] * receptive)};
}
}  // namespace

void he_normal(const Tensor& weight, Generator& gen) {
  normal(weight, gen.seed(), gen.next_offset(), 0.0, std::sqrt(2.0 / fans(weight).first));
}

void glorot_uniform(const Tensor& weight, Generator& gen) {
  const auto [fan_in, fan_out] = fans(weight);
  const double a = std::sqrt(6.0 / (fan_in + fan_out));
  uniform(weight, gen.seed(), gen.next_offset(), -a, a);
}

const char* init_name(Init init) {
  switch (init) {
    case Init::he: return "he";
    case Init::glorot: return "glorot";
    default: return "auto";
  }
}

Init init_from_name(const std::string& name) {
  if (name == "he") return Init::he;
  if (name == "glorot") return Init::glorot;
  if (name == "auto") return Init::automatic;
  detail::fail("init", "argument 'init' must be 'he', 'glorot' or 'auto', got '" + name + "'");
}

// ---- BufferPool ----

Tensor BufferPool::get(std::size_t key, const Shape& shape, DType dtype, Device device, int device_index) {
  if (slots_.size() <= key) slots_.resize(key + 1);
  std::array<Tensor, 2>& slot = slots_[key];
  for (Tensor& t : slot)
    if (t.defined() && t.use_count() == 1 && t.shape() == shape && t.dtype() == dtype && t.device() == device &&
        t.device_index() == device_index)
      return t;
  // Neither is free (or fits): a fresh tensor replaces the older one (slot[0]).
  slot[0] = std::move(slot[1]);
  slot[1] = Tensor::empty(shape, dtype, device, device_index);
  return slot[1];
}

// ---- Module ----

Module::~Module() = default;

namespace {
// An attached registration may not touch an entry of the module's structure.
template <class Entries>
void check_not_structural(const Module& m, const Entries& entries, const std::string& name, bool attached) {
  if (!attached) return;
  for (const auto& e : entries)
    if (e.name == name && !e.attached)
      detail::fail(m.type_name(), "'" + name + "' is part of the " + m.type_name() +
                                      "'s structure: it cannot be replaced or removed by assignment");
}
}  // namespace

void Module::register_parameter(const std::string& name, ParameterPtr parameter, bool attached) {
  if (name.empty() || name.find('.') != std::string::npos)
    detail::fail(type_name(), "a parameter name must be non-empty without dots, got '" + name + "'");
  check_not_structural(*this, params_, name, attached);
  check_not_structural(*this, children_, name, attached);
  for (auto it = children_.begin(); it != children_.end(); ++it)
    if (it->name == name) {
      children_.erase(it);
      break;
    }
  for (auto it = params_.begin(); it != params_.end(); ++it)
    if (it->name == name) {
      if (parameter) it->parameter = std::move(parameter);
      else params_.erase(it);
      return;
    }
  if (parameter) params_.push_back({name, std::move(parameter), attached});
}

void Module::register_module(const std::string& name, ModulePtr module, bool attached) {
  if (name.empty() || name.find('.') != std::string::npos)
    detail::fail(type_name(), "a module name must be non-empty without dots, got '" + name + "'");
  if (module && module->contains(this))
    detail::fail(type_name(), "'" + name + "' contains this module: a model cannot contain itself");
  check_not_structural(*this, params_, name, attached);
  check_not_structural(*this, children_, name, attached);
  for (auto it = params_.begin(); it != params_.end(); ++it)
    if (it->name == name) {
      params_.erase(it);
      break;
    }
  for (auto it = children_.begin(); it != children_.end(); ++it)
    if (it->name == name) {
      if (module) it->module = std::move(module);
      else children_.erase(it);
      return;
    }
  if (module) children_.push_back({name, std::move(module), attached});
}

bool Module::unregister(const std::string& name) {
  check_not_structural(*this, params_, name, true);
  check_not_structural(*this, children_, name, true);
  for (auto it = params_.begin(); it != params_.end(); ++it)
    if (it->name == name) {
      params_.erase(it);
      return true;
    }
  for (auto it = children_.begin(); it != children_.end(); ++it)
    if (it->name == name) {
      children_.erase(it);
      return true;
    }
  return false;
}

bool Module::contains(const Module* m) const {
  if (m == this) return true;
  for (const auto& entry : named_descendants())
    if (entry.second.get() == m) return true;
  return false;
}

ParameterPtr Module::parameter(const std::string& name) const {
  for (const ParameterEntry& e : params_)
    if (e.name == name) return e.parameter;
  return nullptr;
}

ModulePtr Module::module(const std::string& name) const {
  for (const ModuleEntry& e : children_)
    if (e.name == name) return e.module;
  return nullptr;
}

NamedModules Module::named_descendants() const {
  // Breadth first, each module once (a module reached twice keeps its first name).
  NamedModules out;
  std::unordered_set<const Module*> seen{this};
  std::vector<std::pair<std::string, const Module*>> queue{{"", this}};
  for (std::size_t q = 0; q < queue.size(); ++q) {
    const auto [prefix, m] = queue[q];
    for (const ModuleEntry& e : m->children_) {
      if (!seen.insert(e.module.get()).second) continue;
      const std::string name = prefix.empty() ? e.name : prefix + "." + e.name;
      out.emplace_back(name, e.module);
      queue.emplace_back(name, e.module.get());
    }
  }
  return out;
}

NamedParameters Module::named_parameters() const {
  NamedParameters out;
  std::unordered_set<const Parameter*> seen;
  auto add = [&](const std::string& prefix, const Module& m) {
    for (const ParameterEntry& e : m.params_)
      if (seen.insert(e.parameter.get()).second) out.emplace_back(prefix + e.name, e.parameter);
  };
  add("", *this);
  for (const auto& [name, m] : named_descendants()) add(name + ".", *m);
  return out;
}

std::vector<ParameterPtr> Module::parameters() const {
  std::vector<ParameterPtr> out;
  for (auto& entry : named_parameters()) out.push_back(std::move(entry.second));
  return out;
}

void Module::zero_grad() {
  for (const ParameterPtr& p : parameters()) p->zero_grad();
}

void Module::train(bool mode) {
  training_ = mode;
  for (const auto& entry : named_descendants()) entry.second->training_ = mode;
}

void Module::to(Device device, int device_index) {
  for (const ParameterPtr& p : parameters()) p->to(device, device_index);
  release_buffers();
}

void Module::release_buffers() {
  buffers_.clear();
  release_own_buffers();
  for (const auto& entry : named_descendants()) {
    entry.second->buffers_.clear();
    entry.second->release_own_buffers();
  }
}

double Module::penalty() const {
  double total = own_penalty();
  for (const auto& entry : named_descendants()) total += entry.second->own_penalty();
  return total;
}

double Module::apply_penalties() {
  apply_own_penalties();
  for (const auto& entry : named_descendants()) entry.second->apply_own_penalties();
  return penalty();
}

}  // namespace seisoku::nn
