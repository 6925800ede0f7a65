// seisoku._core.nn: Parameter, the Module base (with a trampoline, so that Python subclasses can
// run inside C++ containers) and the containers Sequential, MultiHead and AutoEncoder. Python adds
// what is Python's in seisoku/nn/module.py: calling, state files, pickling and repr.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "nn_util.hpp"

namespace seisoku::python {
namespace {

// The array of a parameter's tensor, the same Python object on every access: the first access
// makes the tensor a view held by that array.
template <class Replace>
py::object stable_array(const Tensor& t, Replace&& replace) {
  py::object arr = to_python(t);
  if (!held_by(t, arr)) replace(kept_by(arr, t));
  return arr;
}

std::string device_str(const Tensor& t) {
  return t.is_cuda() ? (t.device_index() == 0 ? std::string("cuda") : "cuda:" + std::to_string(t.device_index()))
                     : std::string("cpu");
}

py::tuple shape_tuple(const Tensor& t) {
  py::tuple s(t.dim());
  for (std::int64_t i = 0; i < t.dim(); ++i) s[static_cast<std::size_t>(i)] = t.shape()[i];
  return s;
}

// A Python subclass of seisoku.nn.Module: forward / backward written in Python (NumPy or CuPy).
class PyModule : public nn::Module, public py::trampoline_self_life_support {
 public:
  Tensor forward(const Tensor& x) override {
    py::gil_scoped_acquire gil;
    const py::function f = py::get_override(static_cast<const nn::Module*>(this), "forward");
    if (!f) throw py::value_error("[Module] a seisoku.nn.Module subclass must define forward(x)");
    const py::object y = f(to_python(x));
    return as_kept_tensor(y, "Module.forward", "the returned value", false);
  }
  Tensor backward(const Tensor& grad, bool need_input_grad) override {
    py::gil_scoped_acquire gil;
    const py::function f = py::get_override(static_cast<const nn::Module*>(this), "backward");
    if (!f) throw py::value_error("[Module] a seisoku.nn.Module subclass must define backward(grad, need_input_grad)");
    const py::object g = f(to_python(grad), need_input_grad);
    return g.is_none() ? Tensor() : as_kept_tensor(g, "Module.backward", "the returned value", false);
  }
};

// obj.name = value for modules: parameters and modules are registered (named_parameters and
// named_modules see them), properties keep their own setters, anything else is a plain attribute.
void module_setattr(const py::object& self, const py::str& name, const py::object& value) {
  nn::Module& m = self.cast<nn::Module&>();
  PyObject* descr = _PyType_Lookup(Py_TYPE(self.ptr()), name.ptr());
  if (descr != nullptr && Py_TYPE(descr)->tp_descr_set != nullptr) {
    if (PyObject_GenericSetAttr(self.ptr(), name.ptr(), value.ptr()) != 0) throw py::error_already_set();
    return;
  }
  const std::string key = name.cast<std::string>();
  const bool param = py::isinstance<nn::Parameter>(value), module = py::isinstance<nn::Module>(value);
  if (param || module) {
    if (param) m.register_parameter(key, value.cast<nn::ParameterPtr>());
    else m.register_module(key, value.cast<nn::ModulePtr>());
    if (py::hasattr(self, "__dict__")) {  // a Python subclass: no stale plain attribute of that name
      py::dict dict = self.attr("__dict__");
      if (dict.contains(name)) PyDict_DelItem(dict.ptr(), name.ptr());
    }
    return;
  }
  const bool registered = m.parameter(key) || m.module(key);
  if (value.is_none() && registered) {  // None removes an attached parameter or module
    m.unregister(key);
    return;
  }
  if (!py::hasattr(self, "__dict__"))
    throw py::attribute_error("'" + std::string(m.type_name()) + "' object has no attribute '" + key +
                              "': a native module takes Parameters and modules as attributes (a Python subclass "
                              "of seisoku.nn.Module takes any)");
  if (registered) m.unregister(key);
  if (PyObject_GenericSetAttr(self.ptr(), name.ptr(), value.ptr()) != 0) throw py::error_already_set();
}

py::object module_getattr(const py::object& self, const std::string& name) {
  const nn::Module& m = self.cast<const nn::Module&>();
  if (nn::ParameterPtr p = m.parameter(name)) return py::cast(p);
  if (nn::ModulePtr c = m.module(name)) return py::cast(c);
  throw py::attribute_error("'" + py::str(py::type::of(self).attr("__name__")).cast<std::string>() +
                            "' object has no attribute '" + name + "'");
}

void module_delattr(const py::object& self, const py::str& name) {
  PyObject* descr = _PyType_Lookup(Py_TYPE(self.ptr()), name.ptr());
  const bool data_descriptor = descr != nullptr && Py_TYPE(descr)->tp_descr_set != nullptr;
  if (!data_descriptor && self.cast<nn::Module&>().unregister(name.cast<std::string>())) return;
  if (PyObject_GenericSetAttr(self.ptr(), name.ptr(), nullptr) != 0) throw py::error_already_set();
}

py::list named_parameters(const nn::Module& m, const std::string& prefix) {
  py::list out;
  const std::string head = prefix.empty() ? prefix : prefix + ".";
  for (const auto& [name, p] : m.named_parameters()) out.append(py::make_tuple(head + name, p));
  return out;
}

// Runs f (a native call over m's parameters) with the GIL released, on CuPy's stream when they
// are on the GPU.
template <class F>
auto over_parameters(nn::Module& m, const char* op, F&& f) {
  Call c(op);
  for (const auto& p : m.parameters()) c.uses(p->value());
  decltype(f()) result{};
  c.run([&] { result = f(); });
  return result;
}

}  // namespace

void bind_nn(py::module_& m) {
  using py::arg;
  py::module_ nn = m.def_submodule("nn", "seisoku::nn bound: layers, models and losses");

  py::classh<nn::Parameter>(nn, "Parameter", R"doc(A learnable array and its gradient (seisoku::nn::Parameter).

Args:
    value: the array (NumPy or CuPy); the Parameter keeps it, not a copy.
    name: label used in messages (default "").
    regularize: whether norm penalties apply. Default: True for arrays of 2 or more dimensions
        (weights), False for 1-D ones (biases), as the lecture recommends.

Gradients follow one rule in Python and C++: backward adds into ``grad`` (shared parameters
accumulate); ``zero_grad()`` only marks it zero, so the next backward that writes it overwrites
it, and reading ``grad`` before that clears it to zeros first.)doc")
      .def(py::init([](py::handle value, std::string name, py::object regularize) {
             std::optional<bool> reg;
             if (!regularize.is_none()) reg = regularize.cast<bool>();
             Call c("Parameter");  // the zero gradient is filled as any op is (on CuPy's stream)
             const Tensor v = as_kept_tensor(value, "Parameter", "value", true);
             c.uses(v);
             std::shared_ptr<nn::Parameter> p;
             c.run([&] { p = std::make_shared<nn::Parameter>(v, std::move(name), reg); });
             return p;
           }),
           arg("value"), arg("name") = "", arg("regularize") = py::none())
      .def_property(
          "value", [](nn::Parameter& p) { return stable_array(p.value(), [&](Tensor t) { p.set_value(std::move(t)); }); },
          [](nn::Parameter& p, py::handle v) {
            if (!held_by(p.value(), v)) p.set_value(as_kept_tensor(v, "Parameter", "value", true));
          },
          "The array (NumPy or CuPy), zero-copy: writing into it changes the parameter.")
      .def_property(
          "grad",
          [](nn::Parameter& p) {
            if (p.grad_marked_zero()) {  // the clearing fill runs as any op does
              Call c("Parameter");
              c.uses(p.value());
              c.run([&] { p.grad(); });
            }
            return stable_array(p.grad_memory(), [&](Tensor t) { p.set_grad(std::move(t)); });
          },
          [](nn::Parameter& p, py::handle g) {
            if (!held_by(p.grad_memory(), g) || p.grad_marked_zero())
              p.set_grad(as_kept_tensor(g, "Parameter", "grad", true));
          },
          "The gradient array (the value's shape, dtype and device); zeros after zero_grad().")
      .def_property_readonly("shape", [](const nn::Parameter& p) { return shape_tuple(p.value()); })
      .def_property_readonly("dtype", [](const nn::Parameter& p) { return numpy_dtype(p.value().dtype()); })
      .def_property_readonly("device", [](const nn::Parameter& p) { return device_str(p.value()); },
                             "'cpu', or 'cuda' ('cuda:N' for device N > 0)")
      .def_readwrite("name", &nn::Parameter::name)
      .def_readwrite("regularize", &nn::Parameter::regularize, "Whether norm penalties and max-norm apply.")
      .def("zero_grad", &nn::Parameter::zero_grad, "Mark the gradient zero (no pass over memory).")
      .def_property_readonly("grad_marked_zero", &nn::Parameter::grad_marked_zero,
                             "Whether zero_grad() marked the gradient and nothing has written or read it since.")
      .def(
          "to",
          [](nn::Parameter& p, py::handle device) {
            int index = 0;
            const Device d = device_of(device, "Parameter.to", &index);
            Call c("Parameter.to");
            c.uses(p.value());
            c.uses(d);
            c.run([&] { p.to(d, index); });
          },
          arg("device"), "Move value and gradient to 'cpu' or 'cuda' in place.")
      .def("__repr__",
           [](const nn::Parameter& p) {
             return "Parameter('" + p.name + "', shape=" + py::repr(shape_tuple(p.value())).cast<std::string>() +
                    ", dtype=" + dtype_name(p.value().dtype()) + ", " + device_str(p.value()) + ")";
           })
      .def(py::pickle(
          [](nn::Parameter& p) {
            return py::make_tuple(stable_array(p.value(), [&](Tensor t) { p.set_value(std::move(t)); }), p.name,
                                  p.regularize);
          },
          [](const py::tuple& t) {
            // A read-only array (a memory-mapped pickle) is copied: a parameter is written to.
            py::object value = t[0];
            if (py::isinstance<py::array>(value) && !py::reinterpret_borrow<py::array>(value).writeable())
              value = py::module_::import("numpy").attr("array")(value, py::arg("copy") = true);
            return std::make_shared<nn::Parameter>(as_kept_tensor(value, "Parameter", "value", true),
                                                   t[1].cast<std::string>(), t[2].cast<bool>());
          }));

  py::classh<nn::Module, PyModule>(nn, "Module", R"doc(Base class of layers and models (seisoku::nn::Module).

forward(x) keeps what backward needs; backward(grad, need_input_grad=True) takes the gradient of
the loss with respect to the output, adds the parameters' gradients into Parameter.grad and
returns the gradient with respect to the input (None when need_input_grad is False and the module
skips it). Subclass it in Python with forward and backward over NumPy or CuPy arrays; such a module
runs inside a Sequential of built-in layers like any other. Assigning a Parameter or a Module to an
attribute registers it (named_parameters and named_modules see it).)doc")
      .def(py::init<>())
      .def("forward", &call_forward, arg("x"), "The module's output for x (kept for backward).")
      .def("backward", &call_backward, arg("grad"), arg("need_input_grad") = true,
           "Adds the parameter gradients; returns the gradient with respect to the input.")
      .def("named_parameters", &named_parameters, arg("prefix") = "",
           "Every parameter once, as (dotted name, Parameter); a shared one under its first name.")
      .def("parameters", &nn::Module::parameters)
      .def(
          "named_modules",
          [](py::object self, const std::string& prefix) {
            py::list out;
            out.append(py::make_tuple(prefix, self));
            for (const auto& [name, child] : self.cast<const nn::Module&>().named_descendants())
              out.append(py::make_tuple(prefix.empty() ? name : prefix + "." + name, child));
            return out;
          },
          arg("prefix") = "", "This module and every descendant once, as (dotted name, module).")
      .def("zero_grad", &nn::Module::zero_grad, "Mark every parameter's gradient zero.")
      .def(
          "train",
          [](py::object self, bool mode) {
            self.cast<nn::Module&>().train(mode);
            return self;
          },
          arg("mode") = true, "Training mode (dropout and noise on) for this module and its descendants; returns it.")
      .def(
          "eval",
          [](py::object self) {
            self.cast<nn::Module&>().eval();
            return self;
          },
          "Evaluation mode; returns the module.")
      .def_property_readonly("training", &nn::Module::training)
      .def(
          "to",
          [](py::object self, py::handle device) {
            int index = 0;
            const Device d = device_of(device, "Module.to", &index);
            nn::Module& mod = self.cast<nn::Module&>();
            Call c("Module.to");
            for (const auto& p : mod.parameters()) c.uses(p->value());
            c.uses(d);
            c.run([&] { mod.to(d, index); });
            return self;
          },
          arg("device"), "Move every parameter to 'cpu' or 'cuda'; returns the module.")
      .def(
          "penalty", [](nn::Module& m) { return over_parameters(m, "penalty", [&] { return m.penalty(); }); },
          "Sum of the activity and tying penalties this module and its descendants added in the last "
          "backward / apply_penalties.")
      .def(
          "apply_penalties",
          [](nn::Module& m) { return over_parameters(m, "apply_penalties", [&] { return m.apply_penalties(); }); },
          "Add the gradients of the tying penalties of the tree; returns penalty().")
      .def("_set_training", &nn::Module::set_training, py::arg("mode"),
           "This module's own training flag only (its children keep theirs).")
      .def("release_buffers", &nn::Module::release_buffers,
           "Drop the arrays kept from the last forward and the reusable results (here and below).")
      .def("__setattr__", &module_setattr)
      .def("__getattr__", &module_getattr)
      .def("__delattr__", &module_delattr)
      .def(
          "_attached",
          [](const nn::Module& mod) {
            py::list params, modules;
            for (const auto& e : mod.own_parameters())
              if (e.attached) params.append(py::make_tuple(e.name, e.parameter));
            for (const auto& e : mod.children())
              if (e.attached) modules.append(py::make_tuple(e.name, e.module));
            return py::make_tuple(params, modules);
          },
          "The parameters and modules registered by assignment (what a pickle must carry besides the config).")
      .def("_children", [](const nn::Module& mod) {
        py::list out;
        for (const auto& e : mod.children()) out.append(py::make_tuple(e.name, e.module));
        return out;
      });

  // ---- containers ----
  py::classh<nn::Sequential, nn::Module>(nn, "Sequential", py::is_final(), R"doc(Modules applied in order; backward runs them in reverse.

A Sequential of built-in layers runs forward and backward as one native call with the GIL
released (a Python module inside takes the GIL for its own part only).)doc")
      .def(py::init([](const py::args& modules) {
        std::vector<nn::ModulePtr> layers;
        for (std::size_t i = 0; i < modules.size(); ++i) {
          if (!py::isinstance<nn::Module>(modules[i]))
            throw py::value_error("[Sequential] argument " + std::to_string(i) + " must be a seisoku.nn.Module, got " +
                                  py::str(py::type::of(modules[i]).attr("__name__")).cast<std::string>());
          layers.push_back(modules[i].cast<nn::ModulePtr>());
        }
        return std::make_shared<nn::Sequential>(std::move(layers));
      }))
      .def("__len__", &nn::Sequential::size)
      .def("__getitem__",
           [](const nn::Sequential& s, std::int64_t i) {
             const auto n = static_cast<std::int64_t>(s.size());
             if (i < -n || i >= n) throw py::index_error("[Sequential] index " + std::to_string(i) + " out of range");
             return s.layers()[static_cast<std::size_t>(i < 0 ? i + n : i)];
           })
      .def("__iter__", [](const nn::Sequential& s) { return py::iter(py::cast(s.layers())); })
      .def_property_readonly("layers", &nn::Sequential::layers, "The modules, in order (a copy of the list).")
      .def(
          "append",
          [](py::object self, const nn::ModulePtr& module) {
            self.cast<nn::Sequential&>().append(module);
            return self;
          },
          arg("module"), "Add a module at the end; returns the Sequential.")
      .def("_config", [](const nn::Sequential& s) { return py::make_tuple(py::tuple(py::cast(s.layers())), py::dict()); });

  py::classh<nn::MultiHead, nn::Module>(nn, "MultiHead", py::is_final(), R"doc(A shared trunk feeding several named heads (multi-task learning).

forward(x) returns {head name: output}; backward takes {head name: gradient} (a head left out
contributes nothing) and sums the heads' gradients into the trunk.

Args:
    trunk: the shared lower layers.
    heads: {name: module}; names are identifiers other than 'trunk'.)doc")
      .def(py::init([](const nn::ModulePtr& trunk, const py::dict& heads) {
             std::vector<std::pair<std::string, nn::ModulePtr>> hs;
             for (const auto& [k, v] : heads) {
               const std::string name = py::str(k).cast<std::string>();
               if (!py::isinstance<py::str>(k) || !k.attr("isidentifier")().cast<bool>())
                 throw py::value_error("[MultiHead] head names must be identifiers, got " + py::repr(k).cast<std::string>());
               if (!py::isinstance<nn::Module>(v))
                 throw py::value_error("[MultiHead] head '" + name + "' must be a seisoku.nn.Module");
               hs.emplace_back(name, v.cast<nn::ModulePtr>());
             }
             return std::make_shared<nn::MultiHead>(trunk, std::move(hs));
           }),
           arg("trunk"), arg("heads"))
      .def(
          "forward",
          [](nn::MultiHead& mh, py::handle x) {
            Running<nn::Module> running(mh);
            Call c("MultiHead");
            const Tensor t = c.kept(x, "x");
            nn::HeadOutputs outs;
            c.run([&] { outs = mh.forward_heads(t); });
            py::dict d;
            for (const auto& [name, y] : outs) d[py::str(name)] = to_python(y);
            return d;
          },
          arg("x"), "{head name: output} for x.")
      .def(
          "backward",
          [](nn::MultiHead& mh, const py::dict& grads, bool need_input_grad) {
            Running<nn::Module> running(mh);
            Call c("MultiHead");
            nn::HeadOutputs gs;
            for (const auto& [k, v] : grads) gs.emplace_back(py::str(k).cast<std::string>(), c.kept(v, "grad"));
            Tensor gx;
            c.run([&] { gx = mh.backward_heads(gs, need_input_grad); });
            return to_python(gx);
          },
          arg("grad"), arg("need_input_grad") = true,
          "Backward from {head name: gradient}; returns the gradient with respect to the input.")
      .def_property_readonly("trunk", &nn::MultiHead::trunk)
      .def_property_readonly("heads",
                             [](const nn::MultiHead& mh) {
                               py::dict d;
                               for (const auto& [name, h] : mh.heads()) d[py::str(name)] = h;
                               return d;
                             })
      .def("_config", [](py::object self) {
        py::dict kw;
        kw["trunk"] = self.attr("trunk");
        kw["heads"] = self.attr("heads");
        return py::make_tuple(py::tuple(), kw);
      });

  py::classh<nn::AutoEncoder, nn::Module>(nn, "AutoEncoder", py::is_final(), R"doc(Encoder Linear layers down to a code, decoder back up.

Args:
    sizes: (inputs, hidden..., code).
    activation: of every layer but the reconstruction (default 'relu').
    output_activation: of the reconstruction (default 'sigmoid', for inputs in [0, 1]; None: identity).
    tied: decoder weights are the encoder's transposed (TiedLinear; default True).
    noise_std: Gaussian noise on the input in training: a denoising autoencoder (default 0).
    slope: leaky_relu negative slope (default 0.01).
    dtype, device, generator: of the new layers.

Or from existing parts: AutoEncoder(encoder=Sequential, decoder=Sequential, noise=GaussianNoise).)doc")
      .def(py::init([](py::handle sizes, py::handle activation, py::handle output_activation, bool tied,
                       py::handle noise_std, py::handle slope, py::handle dtype, py::handle device,
                       py::handle generator) {
             const char* op = "AutoEncoder";
             std::vector<std::int64_t> s;
             if (!py::isinstance<py::sequence>(sizes) || py::isinstance<py::str>(sizes))
               bad_argument(op, "sizes", "a sequence of ints >= 1", sizes);
             for (py::handle v : py::reinterpret_borrow<py::sequence>(sizes)) s.push_back(int_arg(v, op, "sizes", 1));
             nn::AutoEncoderOptions o;
             o.activation = activation_arg(activation, op);
             o.output_activation = activation_arg(output_activation, op);
             o.tied = tied;
             o.noise_std = real_arg(noise_std, op, "noise_std");
             o.slope = real_arg(slope, op, "slope");
             const Placement pl = placement_arg(dtype, device, op);
             o.dtype = pl.dtype, o.device = pl.device, o.device_index = pl.device_index;
             return std::make_shared<nn::AutoEncoder>(s, o, generator_arg(generator, op));
           }),
           arg("sizes"), py::kw_only(), arg("activation") = "relu", arg("output_activation") = "sigmoid",
           arg("tied") = true, arg("noise_std") = 0.0, arg("slope") = 0.01, arg("dtype") = "float32",
           arg("device") = "cpu", arg("generator") = py::none())
      .def(py::init([](std::shared_ptr<nn::Sequential> encoder, std::shared_ptr<nn::Sequential> decoder,
                       std::shared_ptr<nn::GaussianNoise> noise) {
             return std::make_shared<nn::AutoEncoder>(std::move(encoder), std::move(decoder), std::move(noise));
           }),
           py::kw_only(), arg("encoder"), arg("decoder"), arg("noise") = py::none())
      .def(
          "encode",
          [](nn::AutoEncoder& ae, py::handle x) {
            Running<nn::Module> running(ae);
            Call c("AutoEncoder");
            const Tensor t = c.kept(x, "x");
            Tensor y;
            c.run([&] { y = ae.encode(t); });
            return to_python(y);
          },
          arg("x"), "The code of x (no noise), in evaluation mode (it runs the encoder).")
      .def_property_readonly("encoder", &nn::AutoEncoder::encoder)
      .def_property_readonly("decoder", &nn::AutoEncoder::decoder)
      .def_property_readonly("noise", &nn::AutoEncoder::noise)
      .def("_config", [](const nn::AutoEncoder& ae) {
        py::dict kw;
        kw["encoder"] = ae.encoder();
        kw["decoder"] = ae.decoder();
        kw["noise"] = ae.noise();
        return py::make_tuple(py::tuple(), kw);
      });

  bind_nn_layers(nn);
  bind_nn_loss(nn);
}

}  // namespace seisoku::python
