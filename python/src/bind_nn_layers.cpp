// The layers of seisoku._core.nn with Python's keyword arguments; each has _config() (the
// constructor arguments that rebuild it, parameters included, for pickling and copying) and
// extra_repr().
#include <pybind11/stl.h>

#include <string>

#include "nn_util.hpp"

namespace seisoku::python {
namespace {

std::string num(double v) { return py::repr(py::float_(v)).cast<std::string>(); }

py::object window_pair(std::int64_t a, std::int64_t b) { return py::make_tuple(a, b); }

nn::Window window_arg(py::handle kernel, py::handle stride, py::handle padding, const char* op, bool pooling) {
  const auto [kh, kw] = pair_arg(kernel, op, "kernel_size", 1);
  nn::Window w{kh, kw};
  const auto [sh, sw] = stride.is_none() && pooling ? std::pair<std::int64_t, std::int64_t>{kh, kw}
                                                    : pair_arg(stride, op, "stride", 1);
  const auto [ph, pw] = pair_arg(padding, op, "padding", 0);
  w.stride_h = sh, w.stride_w = sw, w.pad_h = ph, w.pad_w = pw;
  return w;
}

std::string window_repr(const nn::Window& w) {
  auto pair = [](std::int64_t a, std::int64_t b) { return "(" + std::to_string(a) + ", " + std::to_string(b) + ")"; };
  return "kernel_size=" + pair(w.kh, w.kw) + ", stride=" + pair(w.stride_h, w.stride_w) +
         ", padding=" + pair(w.pad_h, w.pad_w);
}

std::string act_repr(Activation act) {
  return act == Activation::identity ? "" : std::string(", activation='") + activation_name(act) + "'";
}

double probability_arg(py::handle v, const char* op, const char* name) {
  const double p = real_arg(v, op, name);
  if (!(p >= 0.0 && p < 1.0)) bad_argument(op, name, "a probability in [0, 1)", v);
  return p;
}

template <class Layer>
void bind_generator(py::classh<Layer, nn::Module>& cls) {
  cls.def_property(
      "generator", [](const Layer& l) { return l.generator(); },
      [](Layer& l, py::handle g) { l.set_generator(generator_arg(g, l.type_name())); },
      "The Philox generator of the layer's masks or noise (None: the process-wide one).");
}

}  // namespace

void bind_nn_layers(py::module_& nn) {
  using py::arg;

  // ---- Linear ----
  auto linear = py::classh<nn::Linear, nn::Module>(nn, "Linear", py::is_final(), R"doc(y = dropout(act(x @ W.T + b)), the epilogue fused into one pass over the output.

On the CPU, a product whose left operand is mostly zeros (the input in forward; the gradient
behind the epilogue in backward, as after ReLU and dropout) multiplies its nonzero entries only,
where a cost model of the shape says that beats the dense product (up to about 40% nonzeros for
an 800 -> 800 layer); zeros then contribute nothing even where a weight is Inf or NaN.

Args:
    in_features, out_features: sizes; weight shape (out_features, in_features).
    bias: learn a bias (default True; biases are exempt from norm penalties), or a Parameter to share.
    activation: None, 'relu', 'leaky_relu', 'tanh' or 'sigmoid' (default None).
    slope: leaky_relu negative slope (default 0.01).
    dropout: probability of dropping an output unit in training (default 0).
    dropout_mode: 'inverted' (scale kept units by 1 / (1 - p) in training; default) or
        'lecture' (no scaling in training, outputs times (1 - p) at evaluation).
    init: 'he' (default for relu-family activations) or 'glorot' (default otherwise).
    weight: an existing Parameter to share (its shape must match).
    dtype, device: of new parameters (default float32 on cpu).
    generator: Philox generator for initialisation and dropout masks (default: the process-wide one).)doc");
  linear
      .def(py::init([](py::handle in, py::handle out, py::handle bias, py::handle activation, py::handle slope,
                       py::handle dropout, py::handle dropout_mode, py::handle init, py::handle weight,
                       py::handle dtype, py::handle device, py::handle generator) {
             const char* op = "Linear";
             nn::LinearOptions o;
             const auto [with_bias, bias_param] = bias_arg(bias, op);
             o.bias = with_bias;
             o.activation = activation_arg(activation, op);
             o.slope = real_arg(slope, op, "slope");
             o.dropout = probability_arg(dropout, op, "dropout");
             o.dropout_mode = nn::dropout_mode_from_name(
                 str_arg(dropout_mode, op, "dropout_mode", "'inverted' or 'lecture'"), op, "dropout_mode");
             o.init = init_arg(init, op);
             const Placement pl = placement_arg(dtype, device, op);
             o.dtype = pl.dtype, o.device = pl.device, o.device_index = pl.device_index;
             return std::make_shared<nn::Linear>(int_arg(in, op, "in_features", 1), int_arg(out, op, "out_features", 1),
                                                 o, generator_arg(generator, op), parameter_arg(weight, op, "weight"),
                                                 bias_param);
           }),
           arg("in_features"), arg("out_features"), arg("bias") = true, py::kw_only(), arg("activation") = py::none(),
           arg("slope") = 0.01, arg("dropout") = 0.0, arg("dropout_mode") = "inverted", arg("init") = py::none(),
           arg("weight") = py::none(), arg("dtype") = "float32", arg("device") = "cpu", arg("generator") = py::none())
      .def_property(
          "first_row", &nn::Linear::first_row,
          [](nn::Linear& l, py::handle row) { l.set_first_row(u64_arg(row, "Linear", "first_row")); },
          "Row of the whole batch that the input's row 0 is (default 0; data parallel shards): row i draws "
          "the dropout mask of batch row first_row + i.")
      .def_property_readonly("in_features", &nn::Linear::in_features)
      .def_property_readonly("out_features", &nn::Linear::out_features)
      .def_property(
          "weight", &nn::Linear::weight,
          [](nn::Linear& l, py::handle p) { l.set_weight(parameter_arg(p, "Linear", "weight")); })
      .def_property(
          "bias", &nn::Linear::bias, [](nn::Linear& l, py::handle p) { l.set_bias(parameter_arg(p, "Linear", "bias")); })
      .def_property_readonly("activation", [](const nn::Linear& l) { return std::string(activation_name(l.options().activation)); })
      .def_property_readonly("slope", [](const nn::Linear& l) { return l.options().slope; })
      .def_property_readonly("p", [](const nn::Linear& l) { return l.options().dropout; }, "The dropout probability.")
      .def_property_readonly("dropout_mode", [](const nn::Linear& l) { return nn::dropout_mode_name(l.options().dropout_mode); })
      .def("_config",
           [](const nn::Linear& l) {
             const nn::LinearOptions& o = l.options();
             py::dict kw;
             kw["bias"] = bias_value(l.bias());
             kw["activation"] = activation_value(o.activation);
             kw["slope"] = o.slope;
             kw["dropout"] = o.dropout;
             kw["dropout_mode"] = nn::dropout_mode_name(o.dropout_mode);
             kw["weight"] = l.weight();
             kw["generator"] = l.generator();
             return py::make_tuple(py::make_tuple(l.in_features(), l.out_features()), kw);
           })
      .def("extra_repr", [](const nn::Linear& l) {
        const nn::LinearOptions& o = l.options();
        return std::to_string(l.in_features()) + ", " + std::to_string(l.out_features()) +
               ", bias=" + (l.bias() ? "True" : "False") + act_repr(o.activation) +
               (o.dropout > 0 ? ", dropout=" + num(o.dropout) : "");
      });
  bind_generator(linear);

  py::classh<nn::TiedLinear, nn::Module>(nn, "TiedLinear", py::is_final(), R"doc(A decoder layer that uses another Linear's weight transposed: y = act(x @ W + b).

The weight is the same Parameter (gradients from both uses accumulate into it); only the bias is
this layer's own (or a Parameter passed to share).)doc")
      .def(py::init([](py::handle source, py::handle bias, py::handle activation, py::handle slope) {
             const char* op = "TiedLinear";
             if (!py::isinstance<nn::Linear>(source))
               bad_argument(op, "source", "a seisoku.nn.Linear to tie to", source);
             const auto [with_bias, bias_param] = bias_arg(bias, op);
             return std::make_shared<nn::TiedLinear>(source.cast<std::shared_ptr<nn::Linear>>(), with_bias,
                                                     activation_arg(activation, op), real_arg(slope, op, "slope"),
                                                     bias_param);
           }),
           arg("source"), arg("bias") = true, py::kw_only(), arg("activation") = py::none(), arg("slope") = 0.01)
      .def_property_readonly("source", &nn::TiedLinear::source)
      .def_property_readonly("weight", &nn::TiedLinear::weight)
      .def_property_readonly("bias", &nn::TiedLinear::bias)
      .def_property_readonly("activation", [](const nn::TiedLinear& l) { return std::string(activation_name(l.activation())); })
      .def("_config",
           [](const nn::TiedLinear& l) {
             py::dict kw;
             kw["bias"] = bias_value(l.bias());
             kw["activation"] = activation_value(l.activation());
             kw["slope"] = l.slope();
             return py::make_tuple(py::make_tuple(l.source()), kw);
           })
      .def("extra_repr", [](const nn::TiedLinear& l) {
        const Tensor& w = l.weight()->value();
        return std::to_string(w.shape()[0]) + " -> " + std::to_string(w.shape()[1]) +
               ", bias=" + (l.bias() ? "True" : "False") + act_repr(l.activation());
      });

  auto dropconnect = py::classh<nn::DropConnect, nn::Module>(nn, "DropConnect", py::is_final(), R"doc(A Linear whose weights are masked per mini-batch in training (Wan et al. 2013).

Training uses W * M, M ~ Bernoulli(1 - p) drawn once per forward for the whole batch (no
rescaling). Evaluation uses the expected weights (1 - p) W ('mean', default) or the moment-matched
Gaussian of the pre-activation averaged over `samples` draws ('gaussian', computed natively).

Args:
    in_features, out_features: sizes; weight (out_features, in_features).
    p: probability of dropping a weight in training (default 0.5).
    bias: learn a bias (default True), or a Parameter to share.
    activation: None, 'relu', 'leaky_relu', 'tanh' or 'sigmoid' (default None).
    slope: leaky_relu negative slope (default 0.01).
    inference: 'mean' or 'gaussian' (default 'mean').
    samples: draws of the Gaussian inference (default 64).
    init: 'he' or 'glorot' (default by activation, as Linear).
    weight: an existing Parameter to share.
    dtype, device, generator: as Linear.)doc");
  dropconnect
      .def(py::init([](py::handle in, py::handle out, py::handle p, py::handle bias, py::handle activation,
                       py::handle slope, py::handle inference, py::handle samples, py::handle init,
                       py::handle weight, py::handle dtype, py::handle device, py::handle generator) {
             const char* op = "DropConnect";
             nn::DropConnectOptions o;
             o.p = probability_arg(p, op, "p");
             const auto [with_bias, bias_param] = bias_arg(bias, op);
             o.bias = with_bias;
             o.activation = activation_arg(activation, op);
             o.slope = real_arg(slope, op, "slope");
             o.inference = nn::inference_from_name(str_arg(inference, op, "inference", "'mean' or 'gaussian'"));
             o.samples = int_arg(samples, op, "samples", 1);
             o.init = init_arg(init, op);
             const Placement pl = placement_arg(dtype, device, op);
             o.dtype = pl.dtype, o.device = pl.device, o.device_index = pl.device_index;
             return std::make_shared<nn::DropConnect>(int_arg(in, op, "in_features", 1),
                                                      int_arg(out, op, "out_features", 1), o,
                                                      generator_arg(generator, op), parameter_arg(weight, op, "weight"),
                                                      bias_param);
           }),
           arg("in_features"), arg("out_features"), arg("p") = 0.5, arg("bias") = true, py::kw_only(),
           arg("activation") = py::none(), arg("slope") = 0.01, arg("inference") = "mean", arg("samples") = 64,
           arg("init") = py::none(), arg("weight") = py::none(), arg("dtype") = "float32", arg("device") = "cpu",
           arg("generator") = py::none())
      .def_property_readonly("in_features", &nn::DropConnect::in_features)
      .def_property_readonly("out_features", &nn::DropConnect::out_features)
      .def_property_readonly("weight", &nn::DropConnect::weight)
      .def_property_readonly("bias", &nn::DropConnect::bias)
      .def_property_readonly("p", [](const nn::DropConnect& l) { return l.options().p; })
      .def_property(
          "inference", [](const nn::DropConnect& l) { return nn::inference_name(l.options().inference); },
          [](nn::DropConnect& l, py::handle v) {
            l.set_inference(nn::inference_from_name(str_arg(v, "DropConnect", "inference", "'mean' or 'gaussian'")));
          },
          "The evaluation rule: 'mean' or 'gaussian'.")
      .def_property(
          "samples", [](const nn::DropConnect& l) { return l.options().samples; },
          [](nn::DropConnect& l, py::handle v) { l.set_samples(int_arg(v, "DropConnect", "samples", 1)); },
          "Draws of the Gaussian inference.")
      .def_property_readonly("activation", [](const nn::DropConnect& l) { return std::string(activation_name(l.options().activation)); })
      .def("_config",
           [](const nn::DropConnect& l) {
             const nn::DropConnectOptions& o = l.options();
             py::dict kw;
             kw["p"] = o.p;
             kw["bias"] = bias_value(l.bias());
             kw["activation"] = activation_value(o.activation);
             kw["slope"] = o.slope;
             kw["inference"] = nn::inference_name(o.inference);
             kw["samples"] = o.samples;
             kw["weight"] = l.weight();
             kw["generator"] = l.generator();
             return py::make_tuple(py::make_tuple(l.in_features(), l.out_features()), kw);
           })
      .def("extra_repr", [](const nn::DropConnect& l) {
        return std::to_string(l.in_features()) + ", " + std::to_string(l.out_features()) + ", p=" + num(l.options().p) +
               ", inference='" + nn::inference_name(l.options().inference) + "'" + act_repr(l.options().activation);
      });
  bind_generator(dropconnect);

  // ---- convolution and pooling ----
  py::classh<nn::Conv2d, nn::Module>(nn, "Conv2d", py::is_final(), R"doc(2-D convolution over NCHW inputs; weight (out_channels, in_channels, kh, kw).

kernel_size, stride (default 1) and zero padding (default 0) are an int or an (h, w) pair, in
pixels. A `weight` Parameter can be passed to share filters between layers (parameter sharing);
init defaults to 'he'; bias may be a Parameter to share.)doc")
      .def(py::init([](py::handle in, py::handle out, py::handle kernel, py::handle stride, py::handle padding,
                       py::handle bias, py::handle init, py::handle weight, py::handle dtype, py::handle device,
                       py::handle generator) {
             const char* op = "Conv2d";
             nn::Conv2dOptions o;
             const auto [with_bias, bias_param] = bias_arg(bias, op);
             o.bias = with_bias;
             o.init = init.is_none() ? nn::Init::he : init_arg(init, op);
             const Placement pl = placement_arg(dtype, device, op);
             o.dtype = pl.dtype, o.device = pl.device, o.device_index = pl.device_index;
             return std::make_shared<nn::Conv2d>(int_arg(in, op, "in_channels", 1), int_arg(out, op, "out_channels", 1),
                                                 window_arg(kernel, stride, padding, op, false), o,
                                                 generator_arg(generator, op), parameter_arg(weight, op, "weight"),
                                                 bias_param);
           }),
           arg("in_channels"), arg("out_channels"), arg("kernel_size"), arg("stride") = 1, arg("padding") = 0,
           arg("bias") = true, py::kw_only(), arg("init") = "he", arg("weight") = py::none(), arg("dtype") = "float32",
           arg("device") = "cpu", arg("generator") = py::none())
      .def_property_readonly("in_channels", &nn::Conv2d::in_channels)
      .def_property_readonly("out_channels", &nn::Conv2d::out_channels)
      .def_property_readonly("kernel_size", [](const nn::Conv2d& c) { return window_pair(c.window().kh, c.window().kw); })
      .def_property_readonly("stride", [](const nn::Conv2d& c) { return window_pair(c.window().stride_h, c.window().stride_w); })
      .def_property_readonly("padding", [](const nn::Conv2d& c) { return window_pair(c.window().pad_h, c.window().pad_w); })
      .def_property("weight", &nn::Conv2d::weight,
                    [](nn::Conv2d& c, py::handle p) { c.set_weight(parameter_arg(p, "Conv2d", "weight")); })
      .def_property("bias", &nn::Conv2d::bias,
                    [](nn::Conv2d& c, py::handle p) { c.set_bias(parameter_arg(p, "Conv2d", "bias")); })
      .def("_config",
           [](py::object self) {
             const auto& c = self.cast<const nn::Conv2d&>();
             py::dict kw;
             kw["stride"] = self.attr("stride");
             kw["padding"] = self.attr("padding");
             kw["bias"] = bias_value(c.bias());
             kw["weight"] = c.weight();
             return py::make_tuple(py::make_tuple(c.in_channels(), c.out_channels(), self.attr("kernel_size")), kw);
           })
      .def("extra_repr", [](const nn::Conv2d& c) {
        return std::to_string(c.in_channels()) + ", " + std::to_string(c.out_channels()) + ", " + window_repr(c.window());
      });

  py::classh<nn::MaxPool2d, nn::Module>(nn, "MaxPool2d", py::is_final(), R"doc(Max pooling over NCHW inputs.

kernel_size, stride (default: the kernel size) and padding (default 0, at most half the kernel)
are an int or an (h, w) pair, in pixels.)doc")
      .def(py::init([](py::handle kernel, py::handle stride, py::handle padding) {
             return std::make_shared<nn::MaxPool2d>(window_arg(kernel, stride, padding, "MaxPool2d", true));
           }),
           arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0)
      .def_property_readonly("kernel_size", [](const nn::MaxPool2d& p) { return window_pair(p.window().kh, p.window().kw); })
      .def_property_readonly("stride", [](const nn::MaxPool2d& p) { return window_pair(p.window().stride_h, p.window().stride_w); })
      .def_property_readonly("padding", [](const nn::MaxPool2d& p) { return window_pair(p.window().pad_h, p.window().pad_w); })
      .def("_config",
           [](py::object self) {
             return py::make_tuple(py::make_tuple(self.attr("kernel_size"), self.attr("stride"), self.attr("padding")),
                                   py::dict());
           })
      .def("extra_repr", [](const nn::MaxPool2d& p) { return window_repr(p.window()); });

  py::classh<nn::AvgPool2d, nn::Module>(nn, "AvgPool2d", py::is_final(), R"doc(Average pooling over NCHW inputs.

kernel_size, stride (default: the kernel size) and zero padding (default 0, at most half the
kernel) as MaxPool2d; each window's sum is divided by kh * kw when count_include_pad (default
True), else by the number of its elements inside the input.)doc")
      .def(py::init([](py::handle kernel, py::handle stride, py::handle padding, bool count_include_pad) {
             return std::make_shared<nn::AvgPool2d>(window_arg(kernel, stride, padding, "AvgPool2d", true),
                                                    count_include_pad);
           }),
           arg("kernel_size"), arg("stride") = py::none(), arg("padding") = 0, arg("count_include_pad") = true)
      .def_property_readonly("kernel_size", [](const nn::AvgPool2d& p) { return window_pair(p.window().kh, p.window().kw); })
      .def_property_readonly("stride", [](const nn::AvgPool2d& p) { return window_pair(p.window().stride_h, p.window().stride_w); })
      .def_property_readonly("padding", [](const nn::AvgPool2d& p) { return window_pair(p.window().pad_h, p.window().pad_w); })
      .def_property_readonly("count_include_pad", &nn::AvgPool2d::count_include_pad)
      .def("_config",
           [](py::object self) {
             return py::make_tuple(py::make_tuple(self.attr("kernel_size"), self.attr("stride"), self.attr("padding"),
                                                  self.attr("count_include_pad")),
                                   py::dict());
           })
      .def("extra_repr", [](const nn::AvgPool2d& p) { return window_repr(p.window()); });

  py::classh<nn::Flatten, nn::Module>(nn, "Flatten", py::is_final(), "(N, ...) -> (N, prod(...)), a view of the input.")
      .def(py::init<>())
      .def("_config", [](const nn::Flatten&) { return py::make_tuple(py::tuple(), py::dict()); });

  // ---- elementwise ----
  auto activation = py::classh<nn::ActivationLayer, nn::Module>(nn, "Activation",
                                                                "Base of the activation layers; backward uses the stored output.");
  activation.def_property_readonly("slope", &nn::ActivationLayer::slope)
      .def_property_readonly("name", [](const nn::ActivationLayer& a) { return std::string(activation_name(a.activation())); })
      .def("_config", [](const nn::ActivationLayer& a) {
        py::dict kw;
        if (a.activation() == Activation::leaky_relu) kw["slope"] = a.slope();
        return py::make_tuple(py::tuple(), kw);
      });
  py::classh<nn::Identity, nn::ActivationLayer>(nn, "Identity", py::is_final(), "y = x.").def(py::init<>());
  py::classh<nn::ReLU, nn::ActivationLayer>(nn, "ReLU", py::is_final(), "y = max(x, 0).").def(py::init<>());
  py::classh<nn::LeakyReLU, nn::ActivationLayer>(nn, "LeakyReLU", py::is_final(), "y = x for x > 0, slope * x otherwise (slope >= 0, default 0.01).")
      .def(py::init([](py::handle slope) { return std::make_shared<nn::LeakyReLU>(real_arg(slope, "LeakyReLU", "slope")); }),
           arg("slope") = 0.01)
      .def("extra_repr", [](const nn::LeakyReLU& a) { return "slope=" + num(a.slope()); });
  py::classh<nn::Tanh, nn::ActivationLayer>(nn, "Tanh", py::is_final(), "y = tanh(x).").def(py::init<>());
  py::classh<nn::Sigmoid, nn::ActivationLayer>(nn, "Sigmoid", py::is_final(), "y = 1 / (1 + exp(-x)).").def(py::init<>());
  py::classh<nn::Softmax, nn::Module>(nn, "Softmax", py::is_final(), "Softmax over the last axis.")
      .def(py::init<>())
      .def("_config", [](const nn::Softmax&) { return py::make_tuple(py::tuple(), py::dict()); });

  auto dropout = py::classh<nn::Dropout, nn::Module>(nn, "Dropout", py::is_final(), R"doc(Drop units with probability p in training.

mode 'inverted' (default) scales kept units by 1 / (1 - p) and is the identity at evaluation;
mode 'lecture' (the lecture's form) does not scale in training and multiplies by (1 - p) at
evaluation. The mask is drawn again in backward from the forward's Philox offset, never stored.)doc");
  dropout
      .def(py::init([](py::handle p, py::handle mode, py::handle generator) {
             const char* op = "Dropout";
             return std::make_shared<nn::Dropout>(
                 probability_arg(p, op, "p"),
                 nn::dropout_mode_from_name(str_arg(mode, op, "mode", "'inverted' or 'lecture'"), op, "mode"),
                 generator_arg(generator, op));
           }),
           arg("p") = 0.5, arg("mode") = "inverted", arg("generator") = py::none())
      .def_property(
          "first_row", &nn::Dropout::first_row,
          [](nn::Dropout& d, py::handle row) { d.set_first_row(u64_arg(row, "Dropout", "first_row")); },
          "Row of the whole batch that the input's row 0 is (default 0; data parallel shards): row i draws "
          "the mask of batch row first_row + i.")
      .def_property_readonly("p", &nn::Dropout::p)
      .def_property_readonly("mode", [](const nn::Dropout& d) { return nn::dropout_mode_name(d.mode()); })
      .def("_config",
           [](const nn::Dropout& d) {
             py::dict kw;
             kw["p"] = d.p();
             kw["mode"] = nn::dropout_mode_name(d.mode());
             kw["generator"] = d.generator();
             return py::make_tuple(py::tuple(), kw);
           })
      .def("extra_repr", [](const nn::Dropout& d) {
        return "p=" + num(d.p()) + ", mode='" + nn::dropout_mode_name(d.mode()) + "'";
      });
  bind_generator(dropout);

  auto noise = py::classh<nn::GaussianNoise, nn::Module>(nn, "GaussianNoise", py::is_final(), R"doc(Add N(0, std**2) noise in training; the identity at evaluation.

On inputs: noise injection (a denoising autoencoder's corruption); on hidden units: noise
robustness. std is in the units of the values (>= 0).)doc");
  noise
      .def(py::init([](py::handle std, py::handle generator) {
             const char* op = "GaussianNoise";
             return std::make_shared<nn::GaussianNoise>(real_arg(std, op, "std"), generator_arg(generator, op));
           }),
           arg("std"), arg("generator") = py::none())
      .def_property_readonly("std", &nn::GaussianNoise::stddev)
      .def("_config",
           [](const nn::GaussianNoise& n) {
             py::dict kw;
             kw["std"] = n.stddev();
             kw["generator"] = n.generator();
             return py::make_tuple(py::tuple(), kw);
           })
      .def("extra_repr", [](const nn::GaussianNoise& n) { return "std=" + num(n.stddev()); });
  bind_generator(noise);

  // ---- regularizers ----
  py::classh<nn::ActivityRegularization, nn::Module>(nn, "ActivityRegularization", py::is_final(), R"doc(An activity penalty on its input.

The identity in forward; backward adds the gradient of lam / N * sum|x| (ord 1, sparse
representations) or lam / N * sum x**2 (ord 2), and records the penalty's value (see
Module.penalty).)doc")
      .def(py::init([](py::handle lam, py::handle ord) {
             const char* op = "ActivityRegularization";
             return std::make_shared<nn::ActivityRegularization>(real_arg(lam, op, "lam"),
                                                                 static_cast<int>(int_arg(ord, op, "ord", 1, 2)));
           }),
           arg("lam"), arg("ord") = 1)
      .def_property_readonly("lam", &nn::ActivityRegularization::lam)
      .def_property_readonly("ord", &nn::ActivityRegularization::ord)
      .def("_config",
           [](const nn::ActivityRegularization& a) {
             return py::make_tuple(py::make_tuple(a.lam(), a.ord()), py::dict());
           })
      .def("extra_repr", [](const nn::ActivityRegularization& a) {
        return "lam=" + num(a.lam()) + ", ord=" + std::to_string(a.ord());
      });

  py::classh<nn::Tie, nn::Module>(nn, "Tie", py::is_final(), R"doc(Soft parameter tying: the penalty lam * ||a - b||**2 between two parameters of one shape.

Attach it to a model (model.tie = Tie(a, b, lam)); model.apply_penalties() adds its gradients and
reports it. The parameters stay their layers' (the tie does not list them).)doc")
      .def(py::init([](py::handle a, py::handle b, py::handle lam) {
             const char* op = "Tie";
             nn::ParameterPtr pa = parameter_arg(a, op, "a"), pb = parameter_arg(b, op, "b");
             if (!pa || !pb) bad_argument(op, pa ? "b" : "a", "a seisoku.nn.Parameter", pa ? b : a);
             return std::make_shared<nn::Tie>(std::move(pa), std::move(pb), real_arg(lam, op, "lam"));
           }),
           arg("a"), arg("b"), arg("lam"))
      .def_property_readonly("a", &nn::Tie::a)
      .def_property_readonly("b", &nn::Tie::b)
      .def_property_readonly("lam", &nn::Tie::lam)
      .def("_config", [](const nn::Tie& t) { return py::make_tuple(py::make_tuple(t.a(), t.b(), t.lam()), py::dict()); })
      .def("extra_repr", [](const nn::Tie& t) { return "lam=" + num(t.lam()); });
}

}  // namespace seisoku::python
