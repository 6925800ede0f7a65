#pragma once
// The base of every layer and model: forward / backward over Tensors, named parameters and
// children, train/eval mode, regularization penalties and reusable result memory.
//
// forward(x) keeps what backward needs; backward(grad, need_input_grad) takes the gradient of the
// loss with respect to the module's output, adds its parameters' gradients (see parameter.hpp for
// the gradient rule) and returns the gradient with respect to its input (an undefined Tensor when
// need_input_grad is false and the module may skip it). Stochastic layers take a fresh Philox
// offset from their generator at every training forward and draw the same mask again in backward.
//
// Results: a layer writes its outputs and input gradients into tensors it keeps (the last two per
// kind) and hands out again only once nothing else holds their memory, so a training loop does not
// map fresh memory every step, and a result the caller still holds is never overwritten (writing
// into a returned result changes what a later backward reads, as the result is its saved output).
//
// A module keeps one forward's state, so it appears at most once on a model's path, and one thread
// runs it at a time (copy a model for each thread). A forward that throws leaves the state of the
// last forward that succeeded.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "seisoku/nn/parameter.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::nn {

// Reusable result tensors: per key, the last two handed out.
class SEISOKU_API BufferPool {
 public:
  // An uninitialised tensor of this shape, dtype and device that nothing outside the pool holds.
  Tensor get(std::size_t key, const Shape& shape, DType dtype, Device device, int device_index = 0);
  // The same for a tensor like `like` with another shape.
  Tensor like(std::size_t key, const Shape& shape, const Tensor& like) {
    return get(key, shape, like.dtype(), like.device(), like.device_index());
  }
  void clear() { slots_.clear(); }

 private:
  std::vector<std::array<Tensor, 2>> slots_;
};

class Module;
using ModulePtr = std::shared_ptr<Module>;
using NamedParameters = std::vector<std::pair<std::string, ParameterPtr>>;
using NamedModules = std::vector<std::pair<std::string, ModulePtr>>;

class SEISOKU_API Module {
 public:
  Module() = default;
  virtual ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  virtual Tensor backward(const Tensor& grad, bool need_input_grad = true) = 0;
  // The class name used in messages ("Linear").
  virtual const char* type_name() const { return "Module"; }

  // ---- structure: own parameters and children by name, in registration order ----
  struct ParameterEntry {
    std::string name;
    ParameterPtr parameter;
    bool attached;  // registered after construction (by the user), not by the module's constructor
  };
  struct ModuleEntry {
    std::string name;
    ModulePtr module;
    bool attached;
  };
  // Registers (or, under an existing name, replaces; null removes) a parameter or a child. Entries
  // a constructor made (attached false) are the module's structure: an attached registration may
  // not replace or remove them. A child may not contain this module (no cycles).
  void register_parameter(const std::string& name, ParameterPtr parameter, bool attached = true);
  void register_module(const std::string& name, ModulePtr module, bool attached = true);
  // Removes the attached parameter or child of that name; false when there is none. Throws for an
  // entry of the module's structure.
  bool unregister(const std::string& name);
  // Whether `m` is this module or one of its descendants.
  bool contains(const Module* m) const;
  ParameterPtr parameter(const std::string& name) const;  // null when none
  ModulePtr module(const std::string& name) const;        // null when none
  const std::vector<ParameterEntry>& own_parameters() const { return params_; }
  const std::vector<ModuleEntry>& children() const { return children_; }
  // Every parameter once, with dotted names (a shared parameter under the first name reaching it).
  NamedParameters named_parameters() const;
  std::vector<ParameterPtr> parameters() const;
  // Every descendant once (not this module), with dotted names, parents before children.
  NamedModules named_descendants() const;

  // ---- state ----
  void zero_grad();               // marks every parameter's gradient zero
  void train(bool mode = true);  // this module and every descendant
  void eval() { train(false); }
  bool training() const { return training_; }
  // This module's own flag only (restoring a saved model, whose children keep theirs).
  void set_training(bool mode) { training_ = mode; }
  // Marks the module as running in the calling thread; false when another call is running it
  // (the bindings turn that into an error rather than let two threads share its state).
  bool try_enter() { return !busy_.exchange(true, std::memory_order_acquire); }
  void leave() { busy_.store(false, std::memory_order_release); }
  // Moves every parameter to a device and drops the memory kept from the last forward.
  void to(Device device, int device_index = 0);
  // Drops, here and in every descendant, the tensors kept for backward and the reusable results.
  void release_buffers();

  // ---- penalties that are not terms of the optimizer (activity and tying penalties) ----
  // Sum over this module and its descendants of the penalties they added in the last backward
  // or apply_penalties.
  double penalty() const;
  // Adds the gradients of the parameter penalties of the tree (tying) and returns penalty().
  double apply_penalties();

 protected:
  virtual double own_penalty() const { return 0.0; }
  virtual void apply_own_penalties() {}
  virtual void release_own_buffers() {}

  bool training_ = true;
  BufferPool buffers_;

 private:
  std::atomic<bool> busy_{false};
  std::vector<ParameterEntry> params_;
  std::vector<ModuleEntry> children_;
};

}  // namespace seisoku::nn
