#pragma once
// Learnable parameters and the one gradient rule of seisoku::nn (C++ and Python alike):
//
// * backward() ADDS each parameter's gradient into its grad, so a parameter used in several
//   places (shared filters, tied weights) receives the sum of its uses;
// * zero_grad() only marks a gradient as zero; the next backward that writes it overwrites it
//   instead of adding (no pass over memory to clear it first), and reading grad() before that
//   clears it to zeros, so a marked gradient always reads as zeros;
// * a layer whose parameters are not all marked adds into all of them (the marked ones are
//   cleared first); a backward that throws leaves marked gradients marked.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "seisoku/random.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku::nn {

class SEISOKU_API Parameter {
 public:
  // Keeps `value` itself (not a copy) with a zero gradient of its shape, dtype and device.
  // regularize: whether norm penalties apply; default: weights (2 or more dimensions), not
  // biases (1-D), as the lecture recommends.
  explicit Parameter(Tensor value, std::string name = "", std::optional<bool> regularize = std::nullopt);

  const Tensor& value() const { return value_; }
  // Replaces the value; a gradient of another shape, dtype or device is replaced by zeros.
  void set_value(Tensor value);
  // The gradient, cleared to zeros first when zero_grad() marked it.
  const Tensor& grad();
  // Replaces the gradient memory (same shape, dtype and device as the value).
  void set_grad(Tensor grad);
  // The gradient memory as it is, marked or not (for the writers of GradWrite).
  const Tensor& grad_memory() const { return grad_; }
  bool grad_marked_zero() const { return zero_marked_; }
  // Marks the gradient zero (see the gradient rule above).
  void zero_grad() { zero_marked_ = true; }
  // Moves value and gradient to a device (copies; a marked gradient stays marked).
  void to(Device device, int device_index = 0);

  std::string name;
  bool regularize;

 private:
  friend class GradWrite;
  Tensor value_, grad_;
  bool zero_marked_ = false;
};
using ParameterPtr = std::shared_ptr<Parameter>;

// The start of a backward pass that writes the gradients of `params` (null entries ignored).
// accumulate() is false when every one of them is marked zero: the pass overwrites them and they
// count as written; it is true otherwise, and the marked ones are cleared now. Unless commit() is
// called, the destructor puts back the marks it took (a failed backward leaves them zero).
class SEISOKU_API GradWrite {
 public:
  explicit GradWrite(std::initializer_list<Parameter*> params);
  ~GradWrite();
  GradWrite(const GradWrite&) = delete;
  GradWrite& operator=(const GradWrite&) = delete;
  bool accumulate() const { return accumulate_; }
  void commit() { committed_ = true; }

 private:
  std::vector<Parameter*> taken_;
  bool accumulate_ = true;
  bool committed_ = false;
};

// Initialisers drawing from the Philox stream of `generator` (one fresh offset each):
// N(0, 2 / fan_in) (He et al. 2015, for ReLU-family layers) and U(-a, a) with
// a = sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio 2010). fan_in = shape[1] * receptive field,
// fan_out = shape[0] * receptive field.
enum class Init : std::uint8_t { automatic, he, glorot };  // automatic: he for relu family, else glorot
SEISOKU_API void he_normal(const Tensor& weight, Generator& generator);
SEISOKU_API void glorot_uniform(const Tensor& weight, Generator& generator);
SEISOKU_API const char* init_name(Init init);
SEISOKU_API Init init_from_name(const std::string& name);  // "he", "glorot", "auto"

}  // namespace seisoku::nn
