// Bindings of the optim family. A parameter group is converted once into an OptimGroup of
// tensors (_core.OptimGroup): seisoku.nn Parameters give their own tensors (read again each step,
// with no Python attribute access; a gradient marked zero by zero_grad is cleared first), other
// objects with .value and .grad arrays give cached views that each step checks are still the
// arrays of .value and .grad (reconverting those that were replaced), so one native call steps
// hundreds of tensors without a Python loop.
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "convert.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/nn/parameter.hpp"
#include "seisoku/optim.hpp"

namespace seisoku::python {
namespace {

OptimKind kind_from_name(const std::string& s) {
  if (s == "sgd") return OptimKind::sgd;
  if (s == "adam") return OptimKind::adam;
  if (s == "rmsprop") return OptimKind::rmsprop;
  if (s == "adagrad") return OptimKind::adagrad;
  throw py::value_error("[optim_step] kind must be 'sgd', 'adam', 'rmsprop' or 'adagrad', got '" + s + "'");
}

const char* kind_name(OptimKind k) {
  switch (k) {
    case OptimKind::sgd: return "sgd";
    case OptimKind::adam: return "adam";
    case OptimKind::rmsprop: return "rmsprop";
    case OptimKind::adagrad: return "adagrad";
  }
  return "?";
}

L1Mode l1_mode_from_name(const std::string& s) {
  if (s == "proximal") return L1Mode::proximal;
  if (s == "subgradient") return L1Mode::subgradient;
  throw py::value_error("[optim_step] l1_mode must be 'proximal' or 'subgradient', got '" + s + "'");
}

NonFinite nonfinite_from_name(const std::string& s) {
  if (s == "raise") return NonFinite::raise;
  if (s == "skip") return NonFinite::skip;
  if (s == "ignore") return NonFinite::ignore;
  throw py::value_error("[optim_step] nonfinite must be 'raise', 'skip' or 'ignore', got '" + s + "'");
}

// A parameter group with cached views of its arrays.
class PyOptimGroup {
 public:
  PyOptimGroup(py::list params, py::list state, py::object regularize, std::vector<std::string> names,
               std::vector<std::int64_t> steps)
      : params_(params), regularize_(regularize.is_none() ? -1 : regularize.cast<bool>() ? 1 : 0) {
    const std::size_t n = params.size();
    values_.resize(n);
    grads_.resize(n);
    native_.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      if (py::isinstance<nn::Parameter>(params[i])) native_[i] = params[i].cast<nn::ParameterPtr>();
    group_.params.resize(n);
    group_.grads.resize(n);
    group_.penalize.assign(n, regularize_ == 1);
    for (std::size_t i = 0; i < n; ++i) refresh_one(nullptr, i);
    for (py::handle slot : state) {
      py::list arrays = py::reinterpret_borrow<py::list>(slot);
      std::vector<Tensor> views;
      for (py::handle a : arrays) {
        views.push_back(as_tensor(a, "optim_step", "state", true));
        keep_.push_back(py::reinterpret_borrow<py::object>(a));
      }
      group_.state.push_back(std::move(views));
    }
    group_.names = std::move(names);
    group_.steps = std::move(steps);
  }

  // Reconverts the parameters whose .value or .grad is no longer the cached array.
  void refresh(Call& c) {
    marked_.clear();
    for (std::size_t i = 0; i < values_.size(); ++i) refresh_one(&c, i);
  }

  // Clears the gradients zero_grad marked (they count as zero); run inside the call, as any op.
  void clear_marked() {
    for (nn::Parameter* p : marked_) p->grad();
    marked_.clear();
  }

  OptimGroup& group() { return group_; }

  // Marks every gradient zero (seisoku.nn Parameters) or fills it with zeros (other objects).
  void zero_grad(Call& c) {
    for (std::size_t i = 0; i < values_.size(); ++i) {
      if (native_[i]) {
        native_[i]->zero_grad();
      } else {
        refresh_one(&c, i);
        c.run([&] { fill(group_.grads[i], 0.0); });
      }
    }
  }

 private:
  // Re-reads parameter i: its arrays, and its regularize flag unless the group overrides it.
  void refresh_one(Call* c, std::size_t i) {
    if (const nn::ParameterPtr& p = native_[i]) {
      group_.params[i] = p->value();
      group_.grads[i] = p->grad_memory();
      if (p->grad_marked_zero()) marked_.push_back(p.get());
      if (regularize_ < 0) group_.penalize[i] = p->regularize ? 1 : 0;
      if (c) {
        c->uses(group_.params[i]);
      }
      return;
    }
    // Interned names, deliberately never released (no destructor after the interpreter ends).
    static const py::handle value_attr = py::str("value").release();
    static const py::handle grad_attr = py::str("grad").release();
    static const py::handle regularize_attr = py::str("regularize").release();
    py::handle p = params_[i];
    py::object v = p.attr(value_attr);
    py::object g = p.attr(grad_attr);
    if (regularize_ < 0) {
      PyObject* r = PyObject_GetAttr(p.ptr(), regularize_attr.ptr());
      if (r == nullptr) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) throw py::error_already_set();
        PyErr_Clear();
        group_.penalize[i] = py::len(v.attr("shape")) >= 2;
      } else {
        const int truth = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (truth < 0) throw py::error_already_set();
        group_.penalize[i] = static_cast<std::uint8_t>(truth);
      }
    }
    if (!v.is(values_[i])) {
      group_.params[i] = c ? c->out(v, "value") : as_tensor(v, "optim_step", "value", true);
      values_[i] = v;
    } else if (c) {
      c->uses(group_.params[i]);
    }
    if (!g.is(grads_[i])) {
      if (g.is_none()) throw py::value_error("[optim_step] parameter " + std::to_string(i) + " has no gradient (None)");
      group_.grads[i] = c ? c->out(g, "grad") : as_tensor(g, "optim_step", "grad", true);
      grads_[i] = g;
    }
  }

  py::list params_;
  std::vector<nn::ParameterPtr> native_;  // the seisoku.nn Parameters (null for other objects)
  std::vector<nn::Parameter*> marked_;     // of those, the ones whose gradient is marked zero
  int regularize_;  // -1: each parameter's .regularize; 0 / 1: the group's override
  std::vector<py::object> values_, grads_, keep_;
  OptimGroup group_;
};

}  // namespace

void bind_optim(py::module_& m) {
  using py::arg;
  py::class_<OptimHyper>(m, "OptimHyper", "Hyper-parameters of one parameter group (see seisoku/optim.hpp)")
      .def(py::init<>())
      .def_property(
          "kind", [](const OptimHyper& h) { return std::string(kind_name(h.kind)); },
          [](OptimHyper& h, const std::string& s) { h.kind = kind_from_name(s); })
      .def_property(
          "l1_mode",
          [](const OptimHyper& h) { return std::string(h.l1_mode == L1Mode::proximal ? "proximal" : "subgradient"); },
          [](OptimHyper& h, const std::string& s) { h.l1_mode = l1_mode_from_name(s); })
      .def_readwrite("lr", &OptimHyper::lr)
      .def_readwrite("momentum", &OptimHyper::momentum)
      .def_readwrite("dampening", &OptimHyper::dampening)
      .def_readwrite("nesterov", &OptimHyper::nesterov)
      .def_readwrite("beta1", &OptimHyper::beta1)
      .def_readwrite("beta2", &OptimHyper::beta2)
      .def_readwrite("amsgrad", &OptimHyper::amsgrad)
      .def_readwrite("alpha", &OptimHyper::alpha)
      .def_readwrite("centered", &OptimHyper::centered)
      .def_readwrite("lr_decay", &OptimHyper::lr_decay)
      .def_readwrite("initial_accumulator", &OptimHyper::initial_accumulator)
      .def_readwrite("eps", &OptimHyper::eps)
      .def_readwrite("l2", &OptimHyper::l2)
      .def_readwrite("weight_decay", &OptimHyper::weight_decay)
      .def_readwrite("l1", &OptimHyper::l1)
      .def_readwrite("max_norm", &OptimHyper::max_norm)
      .def_readwrite("max_norm_axis", &OptimHyper::max_norm_axis)
      .def_readwrite("clip_value", &OptimHyper::clip_value);

  py::class_<PyOptimGroup>(m, "OptimGroup",
                           "A parameter group converted once: params (objects with .value and .grad), "
                           "state[slot][i] arrays, per parameter penalize flags, names and step counts")
      .def(py::init<py::list, py::list, py::object, std::vector<std::string>, std::vector<std::int64_t>>(),
           arg("params"), arg("state"), arg("regularize"), arg("names"), arg("steps"))
      .def_property_readonly("penalize",
                             [](PyOptimGroup& g) { return std::vector<bool>(g.group().penalize.begin(),
                                                                            g.group().penalize.end()); })
      .def_property(
          "hyper", [](PyOptimGroup& g) { return g.group().hyper; },
          [](PyOptimGroup& g, const OptimHyper& h) { g.group().hyper = h; })
      .def_property(
          "steps", [](PyOptimGroup& g) { return g.group().steps; },
          [](PyOptimGroup& g, std::vector<std::int64_t> s) { g.group().steps = std::move(s); });

  m.def("optim_state_names", &optim_state_names, arg("hyper"), "Names of the state buffers, in slot order");
  m.def("optim_check_hyper", &optim_check_hyper, arg("hyper"), "ValueError unless the hyper-parameters are valid");
  m.def(
      "optim_step",
      [](py::list groups, double clip_grad_norm, const std::string& nonfinite) {
        OptimStepOptions options;
        options.clip_grad_norm = clip_grad_norm;
        options.nonfinite = nonfinite_from_name(nonfinite);
        Call c("optim_step");
        std::vector<OptimGroup*> ptrs;
        std::vector<PyOptimGroup*> native;
        for (py::handle h : groups) {
          PyOptimGroup& g = h.cast<PyOptimGroup&>();
          g.refresh(c);
          ptrs.push_back(&g.group());
          native.push_back(&g);
        }
        OptimStepResult r;
        c.run([&] {
          for (PyOptimGroup* g : native) g->clear_marked();
          r = seisoku::optim_step(ptrs, options);
        });
        return py::make_tuple(r.applied, r.grad_norm);
      },
      arg("groups"), arg("clip_grad_norm") = 0.0, arg("nonfinite") = "raise",
      "One fused step over every group; returns (applied, global gradient norm or NaN)");
  m.def(
      "optim_stats",
      [](PyOptimGroup& g) {
        Call c("optim_stats");
        g.refresh(c);
        OptimStats st;
        c.run([&] { st = seisoku::optim_stats(g.group()); });
        py::dict d;
        d["abs_sum"] = st.abs_sum;
        d["sq_sum"] = st.sq_sum;
        d["nonzero"] = st.nonzero;
        d["penalty"] = st.penalty;
        return d;
      },
      arg("group"), "Per parameter ||w||_1, ||w||_2^2, non-zero counts and the group's penalty value");
  m.def(
      "optim_zero_grad",
      [](PyOptimGroup& g) {
        Call c("optim_zero_grad");
        g.zero_grad(c);
      },
      arg("group"), "Mark every gradient of the group zero (seisoku.nn Parameters) or fill it with zeros");
  m.def(
      "max_norm_project",
      [](py::handle w, double max_norm, int axis) {
        Call c("max_norm_project");
        Tensor tw = c.out(w, "w");
        c.run([&] { seisoku::max_norm_project(tw, max_norm, axis); });
      },
      arg("w"), arg("max_norm"), arg("axis") = 0, "Project each slice along axis onto the ball ||w_j||_2 <= max_norm");
}

}  // namespace seisoku::python
