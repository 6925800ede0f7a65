#pragma once
// Tensor: a contiguous row-major n-d array on the CPU or a CUDA device, either owning its
// storage or borrowing memory that someone else (NumPy, CuPy, a C++ caller) keeps alive.
// A Tensor is a handle: copies share the same memory.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "seisoku/dtype.hpp"
#include "seisoku/export.hpp"

namespace seisoku {

using Shape = std::vector<std::int64_t>;

class SEISOKU_API Tensor {
 public:
  Tensor() = default;

  // Owning, uninitialised storage. Negative sizes throw std::invalid_argument.
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu, int device_index = 0);
  // Owning storage filled with zeros.
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::cpu, int device_index = 0);
  // Borrowed view of memory kept alive by the caller (or by `keep_alive`, if given).
  static Tensor view(void* data, const Shape& shape, DType dtype, Device device = Device::cpu,
                     int device_index = 0, std::shared_ptr<void> keep_alive = nullptr);

  // False for a default-constructed Tensor ("no tensor", e.g. no bias).
  bool defined() const { return defined_; }
  void* data() const { return data_; }
  template <class T>
  T* data_as() const { return static_cast<T*>(data_); }

  const Shape& shape() const { return shape_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t size(std::int64_t axis) const;  // negative axes count from the end
  std::int64_t numel() const { return numel_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * itemsize(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int device_index() const { return device_index_; }
  bool is_cuda() const { return device_ == Device::cuda; }
  bool owns_storage() const { return owns_; }
  // What keeps the memory alive (shared by every copy of the handle and by any view made with it
  // as keep_alive), and how many holders it has: 1 when this handle is the only one.
  const std::shared_ptr<void>& storage() const { return storage_; }
  long use_count() const { return storage_.use_count(); }

  // Same memory, new shape with the same number of elements.
  Tensor reshape(const Shape& shape) const;
  // A new owning tensor with the same contents on `device` (a copy even when already there).
  Tensor to(Device device, int device_index = 0) const;
  // "float32(2, 3) cpu"
  std::string describe() const;

 private:
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  Shape shape_;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::float32;
  Device device_ = Device::cpu;
  int device_index_ = 0;
  bool owns_ = false;
  bool defined_ = false;
};

// Number of elements of a shape; throws std::invalid_argument on a negative size.
SEISOKU_API std::int64_t shape_numel(const Shape& shape);
SEISOKU_API std::string shape_str(const Shape& shape);

}  // namespace seisoku
