#include "seisoku/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "core/check.hpp"
#include "kernels/core.hpp"
#include "seisoku/elementwise.hpp"

namespace seisoku {

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (std::int64_t s : shape) {
    if (s < 0) detail::fail("tensor", "negative size in shape " + shape_str(shape));
    if (s != 0 && n > std::numeric_limits<std::int64_t>::max() / s)
      detail::fail("tensor", "shape " + shape_str(shape) + " has too many elements");
    n *= s;
  }
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, int device_index) {
  Tensor t;
  t.shape_ = shape;
  t.numel_ = shape_numel(shape);
  t.dtype_ = dtype;
  t.device_ = device;
  t.device_index_ = device_index;
  t.owns_ = true;
  t.defined_ = true;
  if (static_cast<std::uint64_t>(t.numel_) > (std::numeric_limits<std::size_t>::max() - 64) / itemsize(dtype))
    detail::fail("tensor", "shape " + shape_str(shape) + " of " + dtype_name(dtype) + " needs more bytes than memory can address");
  const std::size_t bytes = t.nbytes();
  if (device == Device::cuda) {
#if defined(SEISOKU_WITH_CUDA)
    void* p = gpu::allocate(bytes, device_index);
    t.storage_ = std::shared_ptr<void>(p, [device_index](void* q) { gpu::deallocate(q, device_index); });
#else
    detail::throw_no_cuda();
#endif
  } else {
    // 64-byte alignment for vector loads; at least one byte so data() is never null.
#if defined(__SANITIZE_ADDRESS__)
    // The exact size under AddressSanitizer, so that no rounding hides a write past the end.
    void* p = ::operator new(bytes == 0 ? 1 : bytes, std::align_val_t{64});
    t.storage_ = std::shared_ptr<void>(p, [](void* q) { ::operator delete(q, std::align_val_t{64}); });
#else
    const std::size_t rounded = ((bytes + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (p == nullptr) throw std::bad_alloc();
    t.storage_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
#endif
  }
  t.data_ = t.storage_.get();
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device, int device_index) {
  Tensor t = empty(shape, dtype, device, device_index);
  fill(t, 0.0);
  return t;
}

Tensor Tensor::view(void* data, const Shape& shape, DType dtype, Device device, int device_index,
                    std::shared_ptr<void> keep_alive) {
  Tensor t;
  t.shape_ = shape;
  t.numel_ = shape_numel(shape);
  if (data == nullptr && t.numel_ != 0) detail::fail("tensor", "view of a null pointer with shape " + shape_str(shape));
  t.dtype_ = dtype;
  t.device_ = device;
  t.device_index_ = device_index;
  t.storage_ = std::move(keep_alive);
  t.data_ = data;
  t.owns_ = false;
  t.defined_ = true;
  return t;
}

std::int64_t Tensor::size(std::int64_t axis) const {
  const std::int64_t d = dim();
  const std::int64_t a = axis < 0 ? axis + d : axis;
  if (a < 0 || a >= d) detail::fail("tensor", "axis " + std::to_string(axis) + " out of range for " + describe());
  return shape_[static_cast<std::size_t>(a)];
}

Tensor Tensor::reshape(const Shape& shape) const {
  if (shape_numel(shape) != numel_)
    detail::fail("reshape", "cannot view " + describe() + " as shape " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::to(Device device, int device_index) const {
  Tensor t = empty(shape_, dtype_, device, device_index);
  copy(*this, t);
  return t;
}

std::string Tensor::describe() const {
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device_name(device_) +
         (device_ == Device::cuda ? ":" + std::to_string(device_index_) : "");
}

}  // namespace seisoku
