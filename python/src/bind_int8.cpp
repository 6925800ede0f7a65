// Bindings of the int8 family: the ops (seisoku._core: quantize_int8, int8_linear, int8_matmul,
// fake_quantize_int8, the kernel switch), Int8Weight, and the layers of seisoku._core.nn
// (QuantizedLinear, QuantizedConv2d, FakeQuantize, QATLinear). Python's seisoku.quant re-exports
// them.
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <vector>

#include "nn_util.hpp"
#include "seisoku/int8.hpp"
#include "seisoku/nn/quantized.hpp"

namespace seisoku::python {
namespace {

py::object host_array(const Tensor& t) { return t.defined() ? to_python(t.to(Device::cpu)) : py::object(py::none()); }

Activation fused_arg(py::handle v, const char* op) {
  const Activation a = activation_arg(v, op);
  if (a != Activation::identity && a != Activation::relu) bad_argument(op, "activation", "None or 'relu'", v);
  return a;
}

nn::QuantizedOptions options_arg(py::handle activation, py::handle input_scale, const char* op,
                                 py::handle output_scale = py::none()) {
  nn::QuantizedOptions o;
  o.activation = fused_arg(activation, op);
  o.input_scale = real_arg(input_scale, op, "input_scale");
  if (!output_scale.is_none()) o.output_scale = real_arg(output_scale, op, "output_scale");
  return o;
}

// A host copy of an array argument (weights are prepared once on the host).
Tensor host_tensor(py::handle obj, const char* op, const char* name) {
  Call c(op);
  return c.in(obj, name).to(Device::cpu);
}

Int8Weight weight_arg(py::handle v, const char* op) {
  if (!py::isinstance<Int8Weight>(v)) bad_argument(op, "weight", "a seisoku.quant.Int8Weight", v);
  return v.cast<Int8Weight>();
}

std::string mode_repr(const nn::QuantizedOptions& o) {
  std::string s = o.input_scale > 0 ? ", input_scale=" + py::repr(py::float_(o.input_scale)).cast<std::string>()
                                     : std::string(", input_scale=dynamic");
  if (o.activation == Activation::relu) s += ", activation='relu'";
  if (o.output_scale > 0) s += ", output_scale=" + py::repr(py::float_(o.output_scale)).cast<std::string>();
  return s;
}

}  // namespace

void bind_int8(py::module_& m) {
  using py::arg;
  py::class_<Int8Weight>(m, "Int8Weight", R"doc(Weights (out_features, in_features) as symmetric int8 codes in [-127, 127] with
float32 scales (one per output row, or one for the tensor), packed once for the int8 kernels.

Int8Weight(weight, per_channel=True) quantizes a float array (scale = max|w| / 127 per row or per
tensor); Int8Weight.from_codes(codes, scales) takes existing codes.)doc")
      .def(py::init([](py::handle weight, bool per_channel) {
             return Int8Weight::quantize(host_tensor(weight, "Int8Weight", "weight"), per_channel);
           }),
           arg("weight"), arg("per_channel") = true)
      .def_static(
          "from_codes",
          [](py::handle codes, py::handle scales) {
            return Int8Weight::from_codes(host_tensor(codes, "Int8Weight", "codes"),
                                          host_tensor(scales, "Int8Weight", "scales"));
          },
          arg("codes"), arg("scales"))
      .def_property_readonly("codes", [](const Int8Weight& w) { return host_array(w.codes()); },
                             "int8 codes (out_features, in_features), a copy.")
      .def_property_readonly("scales", [](const Int8Weight& w) { return host_array(w.scales()); },
                             "float32 scales, (out_features,) or (1,), a copy.")
      .def_property_readonly("out_features", &Int8Weight::out_features)
      .def_property_readonly("in_features", &Int8Weight::in_features)
      .def_property_readonly("per_channel", [](const Int8Weight& w) { return w.scales().numel() > 1; })
      .def_property_readonly("nbytes", &Int8Weight::nbytes, "Bytes of the codes and scales.")
      .def("dequantize", [](const Int8Weight& w) {
        Tensor out = Tensor::empty(w.codes().shape(), DType::float32);
        for (std::int64_t o = 0; o < w.out_features(); ++o)
          for (std::int64_t k = 0; k < w.in_features(); ++k)
            out.data_as<float>()[o * w.in_features() + k] =
                static_cast<float>(w.codes().data_as<std::int8_t>()[o * w.in_features() + k]) * w.scale(o);
        return to_python(out);
      }, "The values the codes stand for (float32), codes * scale of their row.")
      .def(py::pickle([](const Int8Weight& w) { return py::make_tuple(host_array(w.codes()), host_array(w.scales())); },
                      [](const py::tuple& t) {
                        return Int8Weight::from_codes(host_tensor(t[0], "Int8Weight", "codes"),
                                                      host_tensor(t[1], "Int8Weight", "scales"));
                      }))
      .def("__repr__", [](const Int8Weight& w) {
        return "Int8Weight(" + std::to_string(w.out_features()) + ", " + std::to_string(w.in_features()) +
               (w.scales().numel() > 1 ? ", per_channel=True)" : ", per_channel=False)");
      });

  m.def("int8_scale_of", &int8_scale_of, arg("max_abs"), "max_abs / 127 (1 for 0): the scale that maps max_abs to 127.");
  m.def(
      "int8_max_abs",
      [](py::handle x) {
        Call c("int8_max_abs");
        const Tensor t = c.in(x, "x");
        double r = 0;
        c.run([&] { r = int8_max_abs(t); });
        return r;
      },
      arg("x"), "max |x| of a float32 array (NaN or infinite values are a ValueError).");
  m.def(
      "quantize_int8",
      [](py::handle x, py::handle scale, py::handle out) {
        const char* op = "quantize_int8";
        const double s = real_arg(scale, op, "scale");
        Call c(op);
        const Tensor tx = c.in(x, "x");
        py::object result;
        Tensor to;
        if (out.is_none()) {
          to = Tensor::empty(tx.shape(), DType::int8, tx.device(), tx.device_index());
          result = to_python(to);
        } else {
          to = c.out(out, "out");
          result = py::reinterpret_borrow<py::object>(out);
        }
        c.run([&] { quantize_int8(tx, to, s); });
        return result;
      },
      arg("x"), arg("scale"), arg("out") = py::none(),
      "int8 codes clamp(rint(x * (1 / scale)), -127, 127) of a float32 array.");
  m.def(
      "int8_linear",
      [](py::handle xq, py::handle x_scale, const Int8Weight& w, py::handle bias, py::handle activation,
         py::handle out, py::handle output_scale) {
        const char* op = "int8_linear";
        const double s = real_arg(x_scale, op, "x_scale");
        Int8Epilogue e;
        e.activation = fused_arg(activation, op);
        e.output_scale = real_arg(output_scale, op, "output_scale");
        Call c(op);
        const Tensor tx = c.in(xq, "xq");
        const Tensor tb = c.opt_in(bias, "bias");
        py::object result;
        Tensor ty;
        if (out.is_none()) {
          ty = Tensor::empty({tx.dim() == 2 ? tx.shape()[0] : 0, w.out_features()},
                             e.output_scale != 0.0 ? DType::int8 : DType::float32, tx.device(), tx.device_index());
          result = to_python(ty);
        } else {
          ty = c.out(out, "out");
          result = py::reinterpret_borrow<py::object>(out);
        }
        c.run([&] { int8_linear(tx, s, w, tb, ty, e); });
        return result;
      },
      arg("xq"), arg("x_scale"), arg("weight"), arg("bias") = py::none(), arg("activation") = py::none(),
      arg("out") = py::none(), arg("output_scale") = 0.0,
      "act(float(xq @ codes.T) * (x_scale * scale[o]) + bias[o]) as float32 (N, out_features), or as int8 "
      "codes clamp(rint(y / output_scale), -127, 127) when output_scale > 0.");
  m.def(
      "int8_matmul",
      [](py::handle xq, const Int8Weight& w) {
        Call c("int8_matmul");
        const Tensor tx = c.in(xq, "xq");
        Tensor acc = Tensor::empty({tx.dim() == 2 ? tx.shape()[0] : 0, w.out_features()}, DType::int32, tx.device(),
                                   tx.device_index());
        py::object result = to_python(acc);
        c.run([&] { int8_matmul(tx, w, acc); });
        return result;
      },
      arg("xq"), arg("weight"), "The exact int32 product xq @ codes.T.");
  m.def(
      "int8_im2col",
      [](py::handle xq, std::int64_t kh, std::int64_t kw, std::int64_t stride_h, std::int64_t stride_w,
         std::int64_t pad_h, std::int64_t pad_w) {
        Call c("int8_im2col");
        const Tensor tx = c.in(xq, "xq");
        std::vector<std::int64_t> shape{0, 0};
        if (tx.dim() == 4 && kh >= 1 && kw >= 1 && stride_h >= 1 && stride_w >= 1 && pad_h >= 0 && pad_w >= 0) {
          const std::int64_t ho = (tx.shape()[2] + 2 * pad_h - kh) / stride_h + 1;
          const std::int64_t wo = (tx.shape()[3] + 2 * pad_w - kw) / stride_w + 1;
          shape = {tx.shape()[0] * std::max<std::int64_t>(ho, 0) * std::max<std::int64_t>(wo, 0),
                   tx.shape()[1] * kh * kw};
        }
        Tensor cols = Tensor::empty(shape, DType::int8, tx.device(), tx.device_index());
        py::object result = to_python(cols);
        c.run([&] { int8_im2col(tx, cols, kh, kw, stride_h, stride_w, pad_h, pad_w); });
        return result;
      },
      arg("xq"), arg("kh"), arg("kw"), arg("stride_h") = 1, arg("stride_w") = 1, arg("pad_h") = 0,
      arg("pad_w") = 0,
      "The kh x kw patches of int8 xq (N, C, H, W) as rows (N * Ho * Wo, C * kh * kw), zero in the padding.");
  m.def(
      "int8_rows_to_nchw",
      [](py::handle rows, std::int64_t n, std::int64_t ho, std::int64_t wo) {
        Call c("int8_rows_to_nchw");
        const Tensor tr = c.in(rows, "rows");
        const std::int64_t o = tr.dim() == 2 ? tr.shape()[1] : 0;
        Tensor y = Tensor::empty({n, o, ho, wo}, DType::float32, tr.device(), tr.device_index());
        py::object result = to_python(y);
        c.run([&] { int8_rows_to_nchw(tr, y); });
        return result;
      },
      arg("rows"), arg("n"), arg("ho"), arg("wo"),
      "float32 rows (n * ho * wo, O), one per output pixel, as an (n, O, ho, wo) array.");
  m.def("int8_kernel", &int8_kernel, "The CPU int8 kernel in use: 'avx512_vnni', 'avx2' or 'scalar'.");
  m.def("set_int8_kernel", &set_int8_kernel, arg("name"),
        "Use the CPU int8 kernel 'auto', 'avx512_vnni', 'avx2' or 'scalar'; returns the one in use.");
  m.def("int8_kernel_supported", &int8_kernel_supported, arg("name"), "Whether this CPU can run that kernel.");
  m.def(
      "fake_quantize_int8",
      [](py::handle x, py::handle scales) {
        Call c("fake_quantize_int8");
        const Tensor tx = c.in(x, "x"), ts = c.in(scales, "scales");
        Tensor y = Tensor::empty(tx.shape(), tx.dtype(), tx.device(), tx.device_index());
        py::object result = to_python(y);
        c.run([&] { fake_quantize_int8(tx, ts, y); });
        return result;
      },
      arg("x"), arg("scales"), "clamp(rint(x / s), -127, 127) * s, s per tensor (1 element) or per row of x.");
  m.def(
      "fake_quantize_int8_backward",
      [](py::handle grad, py::handle x, py::handle scales) {
        Call c("fake_quantize_int8_backward");
        const Tensor tg = c.in(grad, "grad"), tx = c.in(x, "x"), ts = c.in(scales, "scales");
        Tensor gx = Tensor::empty(tx.shape(), tx.dtype(), tx.device(), tx.device_index());
        py::object result = to_python(gx);
        c.run([&] { fake_quantize_int8_backward(tg, tx, ts, gx); });
        return result;
      },
      arg("grad"), arg("x"), arg("scales"), "The straight-through gradient: grad where x is not clipped, else 0.");

  // ---- layers ----
  py::module_ nn = m.attr("nn");
  py::classh<nn::QuantizedLinear, nn::Module>(nn, "QuantizedLinear", py::is_final(), R"doc(An int8 Linear for inference: y = act(dequantize(quantize(x) @ Wq.T) + b).

Args:
    weight: an Int8Weight (out_features, in_features).
    bias: float array (out_features,) or None.
    activation: None or 'relu', fused into the epilogue (default None).
    input_scale: the static input scale from calibration (> 0), or 0 for a dynamic scale
        max|x| / 127 per batch (default 0).
    output_scale: > 0 makes the output int8 codes at that scale, requantized in the epilogue
        (the static input scale of an int8 layer that follows); 0 (default): float32 output.
x is float32 (N, in_features), NumPy or CuPy, or int8 codes at a static input_scale (the output
of an int8 layer before it); backward raises (inference only).)doc")
      .def(py::init([](py::handle weight, py::handle bias, py::handle activation, py::handle input_scale,
                       py::handle output_scale) {
             const char* op = "QuantizedLinear";
             const Tensor b = bias.is_none() ? Tensor() : host_tensor(bias, op, "bias");
             return std::make_shared<nn::QuantizedLinear>(weight_arg(weight, op), b,
                                                          options_arg(activation, input_scale, op, output_scale));
           }),
           arg("weight"), arg("bias") = py::none(), py::kw_only(), arg("activation") = py::none(),
           arg("input_scale") = 0.0, arg("output_scale") = 0.0)
      .def_static(
          "from_linear",
          [](py::handle linear, bool per_channel, py::handle activation, py::handle input_scale,
             py::handle output_scale) {
            const char* op = "QuantizedLinear";
            if (!py::isinstance<nn::Linear>(linear)) bad_argument(op, "linear", "a seisoku.nn.Linear", linear);
            return nn::QuantizedLinear::from_linear(linear.cast<const nn::Linear&>(), per_channel,
                                                    options_arg(activation, input_scale, op, output_scale));
          },
          arg("linear"), arg("per_channel") = true, py::kw_only(), arg("activation") = py::none(),
          arg("input_scale") = 0.0, arg("output_scale") = 0.0)
      .def_property_readonly("weight", &nn::QuantizedLinear::weight)
      .def_property_readonly("bias", [](const nn::QuantizedLinear& l) { return host_array(l.bias()); })
      .def_property_readonly("in_features", &nn::QuantizedLinear::in_features)
      .def_property_readonly("out_features", &nn::QuantizedLinear::out_features)
      .def_property_readonly("activation",
                             [](const nn::QuantizedLinear& l) { return activation_value(l.options().activation); })
      .def_property_readonly("input_scale", [](const nn::QuantizedLinear& l) { return l.options().input_scale; })
      .def_property_readonly("output_scale", [](const nn::QuantizedLinear& l) { return l.options().output_scale; })
      .def_property_readonly("last_input_scale", &nn::QuantizedLinear::last_input_scale)
      .def_property_readonly("nbytes", &nn::QuantizedLinear::nbytes)
      .def("_config",
           [](const nn::QuantizedLinear& l) {
             py::dict kw;
             kw["activation"] = activation_value(l.options().activation);
             kw["input_scale"] = l.options().input_scale;
             kw["output_scale"] = l.options().output_scale;
             return py::make_tuple(py::make_tuple(l.weight(), host_array(l.bias())), kw);
           })
      .def("extra_repr", [](const nn::QuantizedLinear& l) {
        return std::to_string(l.in_features()) + ", " + std::to_string(l.out_features()) +
               ", per_channel=" + (l.weight().scales().numel() > 1 ? "True" : "False") + mode_repr(l.options());
      });

  py::classh<nn::QuantizedConv2d, nn::Module>(nn, "QuantizedConv2d", py::is_final(), R"doc(An int8 Conv2d for inference over NCHW float32 inputs (CPU).

Args:
    weight: an Int8Weight of the filters flattened to (out_channels, in_channels * kh * kw).
    bias: float array (out_channels,) or None.
    in_channels, kernel_size, stride (default 1), padding (default 0): as Conv2d.
    activation, input_scale: as QuantizedLinear.)doc")
      .def(py::init([](py::handle weight, py::handle bias, py::handle in, py::handle kernel, py::handle stride,
                       py::handle padding, py::handle activation, py::handle input_scale) {
             const char* op = "QuantizedConv2d";
             const auto [kh, kw] = pair_arg(kernel, op, "kernel_size", 1);
             const auto [sh, sw] = pair_arg(stride, op, "stride", 1);
             const auto [ph, pw] = pair_arg(padding, op, "padding", 0);
             nn::Window w{kh, kw, sh, sw, ph, pw};
             const Tensor b = bias.is_none() ? Tensor() : host_tensor(bias, op, "bias");
             return std::make_shared<nn::QuantizedConv2d>(weight_arg(weight, op), b, int_arg(in, op, "in_channels", 1),
                                                          w, options_arg(activation, input_scale, op));
           }),
           arg("weight"), arg("bias"), arg("in_channels"), arg("kernel_size"), arg("stride") = 1,
           arg("padding") = 0, py::kw_only(), arg("activation") = py::none(), arg("input_scale") = 0.0)
      .def_static(
          "from_conv2d",
          [](py::handle conv, bool per_channel, py::handle activation, py::handle input_scale) {
            const char* op = "QuantizedConv2d";
            if (!py::isinstance<nn::Conv2d>(conv)) bad_argument(op, "conv", "a seisoku.nn.Conv2d", conv);
            return nn::QuantizedConv2d::from_conv2d(conv.cast<const nn::Conv2d&>(), per_channel,
                                                    options_arg(activation, input_scale, op));
          },
          arg("conv"), arg("per_channel") = true, py::kw_only(), arg("activation") = py::none(),
          arg("input_scale") = 0.0)
      .def_property_readonly("weight", &nn::QuantizedConv2d::weight)
      .def_property_readonly("bias", [](const nn::QuantizedConv2d& l) { return host_array(l.bias()); })
      .def_property_readonly("in_channels", &nn::QuantizedConv2d::in_channels)
      .def_property_readonly("out_channels", &nn::QuantizedConv2d::out_channels)
      .def_property_readonly("activation",
                             [](const nn::QuantizedConv2d& l) { return activation_value(l.options().activation); })
      .def_property_readonly("input_scale", [](const nn::QuantizedConv2d& l) { return l.options().input_scale; })
      .def_property_readonly("last_input_scale", &nn::QuantizedConv2d::last_input_scale)
      .def_property_readonly("nbytes", &nn::QuantizedConv2d::nbytes)
      .def("_config",
           [](const nn::QuantizedConv2d& l) {
             const nn::Window& w = l.window();
             py::dict kw;
             kw["stride"] = py::make_tuple(w.stride_h, w.stride_w);
             kw["padding"] = py::make_tuple(w.pad_h, w.pad_w);
             kw["activation"] = activation_value(l.options().activation);
             kw["input_scale"] = l.options().input_scale;
             return py::make_tuple(
                 py::make_tuple(l.weight(), host_array(l.bias()), l.in_channels(), py::make_tuple(w.kh, w.kw)), kw);
           })
      .def("extra_repr", [](const nn::QuantizedConv2d& l) {
        return std::to_string(l.in_channels()) + ", " + std::to_string(l.out_channels()) + ", kernel_size=(" +
               std::to_string(l.window().kh) + ", " + std::to_string(l.window().kw) + ")" + mode_repr(l.options());
      });

  py::classh<nn::FakeQuantize, nn::Module>(nn, "FakeQuantize", py::is_final(), R"doc(Fake int8 quantization of activations for quantization-aware training.

forward: y = clamp(rint(x / s), -127, 127) * s with s = max|x| / 127 of the observed maximum: in
training each batch updates it (the first batch's max|x|, then an exponential moving average with
`momentum`, default 0.1); at evaluation it stays. scale > 0 fixes s instead (default 0: observe).
backward: the straight-through estimator, the gradient passed where x was not clipped, 0 where it was.)doc")
      .def(py::init([](py::handle momentum, py::handle scale, py::handle observed_max) {
             const char* op = "FakeQuantize";
             auto f = std::make_shared<nn::FakeQuantize>(real_arg(momentum, op, "momentum"), real_arg(scale, op, "scale"));
             if (!observed_max.is_none()) f->set_observed_max(real_arg(observed_max, op, "observed_max"));
             return f;
           }),
           arg("momentum") = 0.1, arg("scale") = 0.0, arg("observed_max") = py::none())
      .def_property_readonly("momentum", &nn::FakeQuantize::momentum)
      .def_property_readonly("scale", &nn::FakeQuantize::scale, "The scale in use (fixed or observed).")
      .def_property_readonly("fixed", &nn::FakeQuantize::fixed)
      .def_property(
          "observed_max", &nn::FakeQuantize::observed_max,
          [](nn::FakeQuantize& f, py::handle v) { f.set_observed_max(real_arg(v, "FakeQuantize", "observed_max")); },
          "The observed max|x| (0 before any training forward).")
      .def("_config",
           [](const nn::FakeQuantize& f) {
             py::dict kw;
             kw["momentum"] = f.momentum();
             kw["scale"] = f.fixed() ? f.scale() : 0.0;
             kw["observed_max"] = f.observed_max();
             return py::make_tuple(py::tuple(), kw);
           })
      .def("extra_repr", [](const nn::FakeQuantize& f) {
        return "momentum=" + py::repr(py::float_(f.momentum())).cast<std::string>() +
               ", scale=" + py::repr(py::float_(f.scale())).cast<std::string>();
      });

  py::classh<nn::QATLinear, nn::Module>(nn, "QATLinear", py::is_final(), R"doc(A Linear trained through fake-quantized int8 weights (quantization-aware training).

y = act(x @ Wq.T + b), Wq = W fake-quantized per output row (per_channel, default) or per tensor
with the scale max|w| / 127 of the current weight; the straight-through gradient reaches every
weight (none is clipped). weight and bias are Parameters, shared with the Linear they came from.)doc")
      .def(py::init([](py::handle weight, py::handle bias, py::handle activation, bool per_channel) {
             const char* op = "QATLinear";
             nn::ParameterPtr w = parameter_arg(weight, op, "weight");
             if (!w) bad_argument(op, "weight", "a seisoku.nn.Parameter", weight);
             return std::make_shared<nn::QATLinear>(w, parameter_arg(bias, op, "bias"), fused_arg(activation, op),
                                                    per_channel);
           }),
           arg("weight"), arg("bias") = py::none(), py::kw_only(), arg("activation") = py::none(),
           arg("per_channel") = true)
      .def_property_readonly("weight", &nn::QATLinear::weight)
      .def_property_readonly("bias", &nn::QATLinear::bias)
      .def_property_readonly("activation", [](const nn::QATLinear& l) { return activation_value(l.activation()); })
      .def_property_readonly("per_channel", &nn::QATLinear::per_channel)
      .def_property_readonly("in_features", [](const nn::QATLinear& l) { return l.weight()->value().shape()[1]; })
      .def_property_readonly("out_features", [](const nn::QATLinear& l) { return l.weight()->value().shape()[0]; })
      .def("_config",
           [](const nn::QATLinear& l) {
             py::dict kw;
             kw["activation"] = activation_value(l.activation());
             kw["per_channel"] = l.per_channel();
             return py::make_tuple(py::make_tuple(l.weight(), l.bias() ? py::cast(l.bias()) : py::object(py::none())), kw);
           })
      .def("extra_repr", [](const nn::QATLinear& l) {
        const Tensor& w = l.weight()->value();
        return std::to_string(w.shape()[1]) + ", " + std::to_string(w.shape()[0]) +
               (l.activation() == Activation::relu ? ", activation='relu'" : "") +
               (l.per_channel() ? ", per_channel=True" : ", per_channel=False");
      });
}

}  // namespace seisoku::python
