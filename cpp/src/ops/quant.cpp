// Front-ends of fixed-point quantization: validate the format and the tensors once, dispatch,
// and turn a non-finite input reported by the kernel into an error naming its index.
#include "seisoku/quant.hpp"

#include <cmath>
#include <sstream>
#include <string>

#include "core/check.hpp"
#include "kernels/quant.hpp"

namespace seisoku {
namespace {

std::string int_str(int v) { return std::to_string(v); }

// The code dtype of Q(int_bits).(frac_bits), or an error of `op` naming the bad argument.
DType format_dtype(const char* op, int int_bits, int frac_bits) {
  if (int_bits < 1)
    detail::fail(op, "argument 'int_bits' must be >= 1 (the sign bit counts), got " + int_str(int_bits));
  if (frac_bits < 0) detail::fail(op, "argument 'frac_bits' must be >= 0, got " + int_str(frac_bits));
  const long long bits = static_cast<long long>(int_bits) + frac_bits;
  switch (bits) {
    case 8: return DType::int8;
    case 16: return DType::int16;
    case 32: return DType::int32;
    default:
      detail::fail(op, "arguments 'int_bits' + 'frac_bits' must total 8, 16 or 32 bits (int8, int16 or int32 "
                       "codes), got " +
                           int_str(int_bits) + " + " + int_str(frac_bits) + " = " + std::to_string(bits));
  }
}

std::string value_at(const Tensor& x, std::int64_t i) {
  if (x.is_cuda()) return "NaN or infinite";
  const double v = x.dtype() == DType::float32 ? static_cast<double>(x.data_as<float>()[i]) : x.data_as<double>()[i];
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

const char* rounding_name(Rounding rounding) {
  switch (rounding) {
    case Rounding::truncate: return "truncate";
    case Rounding::nearest: return "nearest";
    case Rounding::stochastic: return "stochastic";
  }
  return "unknown";
}

Rounding rounding_from_name(const std::string& name) {
  for (Rounding r : {Rounding::truncate, Rounding::nearest, Rounding::stochastic})
    if (name == rounding_name(r)) return r;
  detail::fail("quantize_fixed",
               "argument 'rounding' must be 'truncate', 'nearest' or 'stochastic', got '" + name + "'");
}

DType fixed_point_dtype(int int_bits, int frac_bits) { return format_dtype("fixed_point_dtype", int_bits, frac_bits); }

void quantize_fixed(const Tensor& x, const Tensor& out, int int_bits, int frac_bits, Rounding rounding,
                    std::uint64_t seed, std::uint64_t offset) {
  const char* op = "quantize_fixed";
  const DType code_dtype = format_dtype(op, int_bits, frac_bits);
  if (rounding != Rounding::truncate && rounding != Rounding::nearest && rounding != Rounding::stochastic)
    detail::fail(op, "argument 'rounding' must be truncate, nearest or stochastic, got " +
                         std::to_string(static_cast<int>(rounding)));
  detail::check_defined(op, "x", x);
  detail::check_defined(op, "out", out);
  detail::check_dtype(op, "x", x, {DType::float32, DType::float64});
  if (out.dtype() != code_dtype)
    detail::fail(op, std::string("argument 'out' must have dtype ") + dtype_name(code_dtype) + " (the codes of Q" +
                         int_str(int_bits) + "." + int_str(frac_bits) + "), got " + dtype_name(out.dtype()));
  detail::check_same_shape(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
  detail::check_no_overlap(op, "x", x, "out", out);
  if (x.numel() == 0) return;
  std::int64_t bad = -1;
  if (x.is_cuda()) {
#if defined(SEISOKU_WITH_CUDA)
    bad = gpu::quantize_fixed(x, out, frac_bits, rounding, seed, offset);
#else
    detail::throw_no_cuda();
#endif
  } else {
    bad = cpu::quantize_fixed(x, out, frac_bits, rounding, seed, offset);
  }
  if (bad >= 0)
    detail::fail(op, "argument 'x' must be finite (NaN and infinite weights have no fixed-point code), got x.flat[" +
                         std::to_string(bad) + "] = " + value_at(x, bad));
}

void dequantize_fixed(const Tensor& codes, const Tensor& out, int frac_bits) {
  const char* op = "dequantize_fixed";
  detail::check_defined(op, "codes", codes);
  detail::check_defined(op, "out", out);
  detail::check_dtype(op, "codes", codes, {DType::int8, DType::int16, DType::int32});
  detail::check_dtype(op, "out", out, {DType::float32, DType::float64});
  const int bits = static_cast<int>(itemsize(codes.dtype())) * 8;
  if (frac_bits < 0 || frac_bits > bits - 1)
    detail::fail(op, "argument 'frac_bits' must be in [0, " + int_str(bits - 1) + "] for " + dtype_name(codes.dtype()) +
                         " codes (at least the sign bit is an integer bit), got " + int_str(frac_bits));
  detail::check_same_shape(op, "codes", codes, "out", out);
  detail::check_same_device(op, "codes", codes, "out", out);
  detail::check_no_overlap(op, "codes", codes, "out", out);
  if (codes.numel() == 0) return;
  SEISOKU_DISPATCH(codes, dequantize_fixed, codes, out, frac_bits);
}

}  // namespace seisoku
