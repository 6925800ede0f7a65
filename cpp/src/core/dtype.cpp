#include "seisoku/dtype.hpp"

#include <stdexcept>

namespace seisoku {

std::size_t itemsize(DType dtype) {
  switch (dtype) {
    case DType::float64:
    case DType::int64: return 8;
    case DType::float32:
    case DType::int32: return 4;
    case DType::float16:
    case DType::bfloat16:
    case DType::int16: return 2;
    case DType::int8:
    case DType::uint8: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::int8: return "int8";
    case DType::uint8: return "uint8";
    case DType::int16: return "int16";
    case DType::int32: return "int32";
    case DType::int64: return "int64";
  }
  return "?";
}

const char* device_name(Device device) { return device == Device::cuda ? "cuda" : "cpu"; }

DType dtype_from_name(const std::string& name) {
  for (DType d : {DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::int8, DType::uint8,
                  DType::int16, DType::int32, DType::int64})
    if (name == dtype_name(d)) return d;
  throw std::invalid_argument("[dtype] unknown dtype '" + name + "'");
}

bool is_floating(DType dtype) {
  return dtype == DType::float32 || dtype == DType::float64 || dtype == DType::float16 || dtype == DType::bfloat16;
}

}  // namespace seisoku
