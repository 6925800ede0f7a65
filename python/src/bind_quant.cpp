// Bindings of the quant family (seisoku.quant: quantize_fixed, dequantize_fixed). Outputs are
// new arrays on the input's device unless `out` names one.
#include "nn_util.hpp"
#include "seisoku/quant.hpp"

#include <stdexcept>
#include <string>

namespace seisoku::python {
namespace {

// fixed_point_dtype with its errors under the name of the calling op.
DType code_dtype(const char* op, int int_bits, int frac_bits) {
  try {
    return fixed_point_dtype(int_bits, frac_bits);
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    throw py::value_error(std::string("[") + op + "]" + msg.substr(msg.find(']') + 1));
  }
}

}  // namespace

void bind_quant(py::module_& m) {
  using py::arg;
  m.def(
      "quantize_fixed",
      [](py::handle x, py::handle int_bits, py::handle frac_bits, py::handle rounding, py::handle seed,
         py::handle offset, py::handle out) {
        const char* op = "quantize_fixed";
        const int ib = static_cast<int>(int_arg(int_bits, op, "int_bits", -(1 << 20), 1 << 20));
        const int fb = static_cast<int>(int_arg(frac_bits, op, "frac_bits", -(1 << 20), 1 << 20));
        if (!py::isinstance<py::str>(rounding))
          bad_argument(op, "rounding", "'truncate', 'nearest' or 'stochastic'", rounding);
        const Rounding r = rounding_from_name(rounding.cast<std::string>());
        const DType dt = code_dtype(op, ib, fb);
        const std::uint64_t s = u64_arg(seed, op, "seed"), o = u64_arg(offset, op, "offset");
        Call c(op);
        const Tensor tx = c.in(x, "x");
        py::object result;
        Tensor to;
        if (out.is_none()) {
          to = Tensor::empty(tx.shape(), dt, tx.device(), tx.device_index());
          result = to_python(to);
        } else {
          to = c.out(out, "out");
          result = py::reinterpret_borrow<py::object>(out);
        }
        c.run([&] { seisoku::quantize_fixed(tx, to, ib, fb, r, s, o); });
        return result;
      },
      arg("x"), arg("int_bits"), arg("frac_bits"), arg("rounding"), arg("seed") = 0, arg("offset") = 0,
      arg("out") = py::none(),
      R"doc(Signed Q(int_bits).(frac_bits) codes of x (float32/float64): round(x * 2**frac_bits) clamped to the
code range; int_bits + frac_bits = 8, 16 or 32 gives int8, int16 or int32 codes (see seisoku/quant.hpp).)doc");
  m.def(
      "dequantize_fixed",
      [](py::handle codes, py::handle frac_bits, py::handle dtype, py::handle out) {
        const char* op = "dequantize_fixed";
        const int fb = static_cast<int>(int_arg(frac_bits, op, "frac_bits", -(1 << 20), 1 << 20));
        Call c(op);
        const Tensor tc = c.in(codes, "codes");
        py::object result;
        Tensor to;
        if (out.is_none()) {
          const DType dt = dtype_of(dtype, op, "dtype");
          if (dt != DType::float32 && dt != DType::float64)
            bad_argument(op, "dtype", "float32 or float64", dtype);
          to = Tensor::empty(tc.shape(), dt, tc.device(), tc.device_index());
          result = to_python(to);
        } else {
          to = c.out(out, "out");
          result = py::reinterpret_borrow<py::object>(out);
        }
        c.run([&] { seisoku::dequantize_fixed(tc, to, fb); });
        return result;
      },
      arg("codes"), arg("frac_bits"), arg("dtype") = "float32", arg("out") = py::none(),
      "codes (int8/int16/int32) * 2**-frac_bits as float32 or float64 (exact below 2**24 in float32).");
  m.def(
      "fixed_point_dtype",
      [](py::handle int_bits, py::handle frac_bits) {
        const char* op = "FixedPoint";
        const int ib = static_cast<int>(int_arg(int_bits, op, "int_bits", -(1 << 20), 1 << 20));
        const int fb = static_cast<int>(int_arg(frac_bits, op, "frac_bits", -(1 << 20), 1 << 20));
        return numpy_dtype(code_dtype(op, ib, fb));
      },
      arg("int_bits"), arg("frac_bits"), "The code dtype (int8, int16, int32) of Q(int_bits).(frac_bits).");
}

}  // namespace seisoku::python
