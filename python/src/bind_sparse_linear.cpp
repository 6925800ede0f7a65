// seisoku._core.nn.SparseLinear: a pruned Linear in compressed sparse rows, with Python's keyword
// arguments, _config() (the constructor arguments that rebuild it, for pickling and copying) and
// extra_repr().
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>

#include "nn_util.hpp"
#include "seisoku/nn/sparse_linear.hpp"

namespace seisoku::python {
namespace {

// A host index array (int64, contiguous copy) from any integer array-like (CuPy's copied back).
Tensor index_arg(py::handle v, const char* op, const char* name) {
  py::module_ np = py::module_::import("numpy");
  py::object obj = py::reinterpret_borrow<py::object>(v);
  if (py::hasattr(obj, "__cuda_array_interface__")) obj = obj.attr("get")();
  py::object arr;
  try {
    arr = np.attr("asarray")(obj);
  } catch (const py::error_already_set&) {
    bad_argument(op, name, "a 1-D array of integers", v);
  }
  const std::string kind = py::str(arr.attr("dtype").attr("kind")).cast<std::string>();
  if ((kind != "i" && kind != "u") || arr.attr("ndim").cast<int>() != 1)
    bad_argument(op, name, "a 1-D array of integers", v);
  py::array_t<std::int64_t, py::array::c_style> a = np.attr("ascontiguousarray")(arr, py::arg("dtype") = "int64");
  Tensor t = Tensor::empty({static_cast<std::int64_t>(a.size())}, DType::int64);
  std::copy(a.data(), a.data() + a.size(), t.data_as<std::int64_t>());
  return t;
}

template <class I>
py::array_t<I> index_array(const Tensor& t) {
  const Tensor h = t.is_cuda() ? t.to(Device::cpu) : t;
  return py::array_t<I>(h.numel(), h.data_as<I>());  // a copy: the pattern stays as it is
}

std::string num(double v) { return py::repr(py::float_(v)).cast<std::string>(); }

double probability(py::handle v, const char* op, const char* name) {
  const double p = real_arg(v, op, name);
  if (!(p >= 0.0 && p < 1.0)) bad_argument(op, name, "a probability in [0, 1)", v);
  return p;
}

}  // namespace

void bind_sparse_linear(py::module_& m) {
  using py::arg;
  py::module_ nn = m.attr("nn");
  auto cls = py::classh<nn::SparseLinear, nn::Module>(nn, "SparseLinear", py::is_final(), R"doc(A Linear whose weight is stored as its nonzeros in compressed sparse rows (CSR).

y = dropout(act(x @ W.T + b)) as Linear, with W (out_features, in_features) given by its nonzero
values at (row, indices[indptr[row]:indptr[row + 1]]). The products multiply the nonzeros only
(own CPU kernels over a transposed batch, and CUDA twins), so a layer pruned to 90-95% zeros runs
several times faster than dense. Only ``values`` and ``bias`` are parameters: training fine-tunes
the kept weights and the pruned ones stay zero without masks.

Build one from a pruned Linear with ``SparseLinear.from_dense(linear)`` (or a whole model with
``seisoku.sparse.to_sparse``), or from CSR arrays:

Args:
    in_features, out_features: sizes of the dense weight (out_features, in_features).
    indptr: integers (out_features + 1,), from 0 to nnz, non-decreasing.
    indices: integers (nnz,), the columns of each row's nonzeros, strictly ascending in a row.
    values: a Parameter (nnz,) to share, or an array (nnz,) of float32 / float64 (NumPy or CuPy)
        kept as a new Parameter 'values' (regularized like a weight).
    bias: True (a new zero bias, default), False, or a Parameter (out_features,) to share.
    activation: None, 'relu', 'leaky_relu', 'tanh' or 'sigmoid' (default None).
    slope: leaky_relu negative slope (default 0.01).
    dropout: probability of dropping an output unit in training (default 0).
    dropout_mode: 'inverted' (default) or 'lecture', as Linear.
    generator: Philox generator of the dropout masks (default: the process-wide one).)doc");
  cls.def(py::init([](py::handle in, py::handle out, py::handle indptr, py::handle indices, py::handle values,
                      py::handle bias, py::handle activation, py::handle slope, py::handle dropout,
                      py::handle dropout_mode, py::handle generator) {
            const char* op = "SparseLinear";
            const std::int64_t cols = int_arg(in, op, "in_features", 1), rows = int_arg(out, op, "out_features", 1);
            const Tensor rp = index_arg(indptr, op, "indptr"), ci = index_arg(indices, op, "indices");
            SparsePattern pattern = sparse_pattern(rp, ci, rows, cols);
            nn::ParameterPtr v;
            if (py::isinstance<nn::Parameter>(values)) {
              v = values.cast<nn::ParameterPtr>();
            } else if (py::hasattr(values, "__cuda_array_interface__") || py::isinstance<py::array>(values)) {
              v = std::make_shared<nn::Parameter>(as_kept_tensor(values, op, "values", true), "values", true);
            } else {
              bad_argument(op, "values", "a seisoku.nn.Parameter or a NumPy / CuPy array", values);
            }
            nn::SparseLinearOptions o;
            o.activation = activation_arg(activation, op);
            o.slope = real_arg(slope, op, "slope");
            o.dropout = probability(dropout, op, "dropout");
            o.dropout_mode = nn::dropout_mode_from_name(
                str_arg(dropout_mode, op, "dropout_mode", "'inverted' or 'lecture'"), op, "dropout_mode");
            auto [with_bias, b] = bias_arg(bias, op);
            if (with_bias && !b) b = std::make_shared<nn::Parameter>(
                                     Tensor::zeros({rows}, v->value().dtype(), v->value().device(),
                                                   v->value().device_index()),
                                     "bias");
            return std::make_shared<nn::SparseLinear>(std::move(pattern), std::move(v), std::move(b), o,
                                                      generator_arg(generator, op));
          }),
          arg("in_features"), arg("out_features"), arg("indptr"), arg("indices"), arg("values"), arg("bias") = true,
          py::kw_only(), arg("activation") = py::none(), arg("slope") = 0.01, arg("dropout") = 0.0,
          arg("dropout_mode") = "inverted", arg("generator") = py::none())
      .def_static(
          "from_dense",
          [](py::handle linear) {
            if (!py::isinstance<nn::Linear>(linear))
              bad_argument("SparseLinear.from_dense", "linear", "a seisoku.nn.Linear", linear);
            const nn::Linear& l = linear.cast<const nn::Linear&>();
            Call c("SparseLinear.from_dense");
            c.uses(l.weight()->value());
            std::shared_ptr<nn::SparseLinear> s;
            c.run([&] { s = nn::SparseLinear::from_linear(l); });
            return s;
          },
          arg("linear"),
          "A SparseLinear holding the nonzero weights of a Linear (a NaN or infinite weight is an error), a copy "
          "of its bias, its activation, dropout and generator, on its device and in its mode.")
      .def(
          "to_dense",
          [](const nn::SparseLinear& s) {
            Call c("SparseLinear.to_dense");
            c.uses(s.values()->value());
            std::shared_ptr<nn::Linear> l;
            c.run([&] { l = s.to_linear(); });
            return l;
          },
          "The equivalent dense seisoku.nn.Linear (copies of the weight, zeros where pruned, and of the bias).")
      .def(
          "dense_weight",
          [](const nn::SparseLinear& s) {
            Call c("SparseLinear.dense_weight");
            c.uses(s.values()->value());
            Tensor w;
            c.run([&] { w = s.dense_weight(); });
            return to_python(w);
          },
          "The weight (out_features, in_features) as a new dense array, zeros where pruned.")
      .def_property_readonly("in_features", &nn::SparseLinear::in_features)
      .def_property_readonly("out_features", &nn::SparseLinear::out_features)
      .def_property_readonly("nnz", &nn::SparseLinear::nnz, "Number of stored (nonzero) weights.")
      .def_property_readonly(
          "density",
          [](const nn::SparseLinear& s) {
            return static_cast<double>(s.nnz()) / static_cast<double>(s.in_features() * s.out_features());
          },
          "nnz / (in_features * out_features).")
      .def_property_readonly(
          "indptr", [](const nn::SparseLinear& s) { return index_array<std::int64_t>(s.pattern().row_ptr); },
          "Row pointers (out_features + 1,) as a new int64 NumPy array.")
      .def_property_readonly(
          "indices", [](const nn::SparseLinear& s) { return index_array<std::int32_t>(s.pattern().col_idx); },
          "Column of each stored weight (nnz,) as a new int32 NumPy array.")
      .def_property_readonly("values", &nn::SparseLinear::values, "The stored weights: a Parameter (nnz,).")
      .def_property_readonly("bias", &nn::SparseLinear::bias)
      .def_property_readonly("activation",
                             [](const nn::SparseLinear& s) { return std::string(activation_name(s.options().activation)); })
      .def_property_readonly("slope", [](const nn::SparseLinear& s) { return s.options().slope; })
      .def_property_readonly("p", [](const nn::SparseLinear& s) { return s.options().dropout; },
                             "The dropout probability.")
      .def_property_readonly("dropout_mode",
                             [](const nn::SparseLinear& s) { return nn::dropout_mode_name(s.options().dropout_mode); })
      .def_property(
          "generator", [](const nn::SparseLinear& s) { return s.generator(); },
          [](nn::SparseLinear& s, py::handle g) { s.set_generator(generator_arg(g, "SparseLinear")); },
          "The Philox generator of the dropout masks (None: the process-wide one).")
      .def_property(
          "first_row", &nn::SparseLinear::first_row,
          [](nn::SparseLinear& s, py::handle row) { s.set_first_row(u64_arg(row, "SparseLinear", "first_row")); },
          "Row of the whole batch that the input's row 0 is (default 0; data parallel shards): row i draws "
          "the dropout mask of batch row first_row + i, as Linear.first_row.")
      .def("_config",
           [](const nn::SparseLinear& s) {
             const nn::SparseLinearOptions& o = s.options();
             py::dict kw;
             kw["bias"] = bias_value(s.bias());
             kw["activation"] = activation_value(o.activation);
             kw["slope"] = o.slope;
             kw["dropout"] = o.dropout;
             kw["dropout_mode"] = nn::dropout_mode_name(o.dropout_mode);
             kw["generator"] = s.generator();
             return py::make_tuple(py::make_tuple(s.in_features(), s.out_features(),
                                                  index_array<std::int64_t>(s.pattern().row_ptr),
                                                  index_array<std::int32_t>(s.pattern().col_idx), s.values()),
                                   kw);
           })
      .def("extra_repr", [](const nn::SparseLinear& s) {
        const nn::SparseLinearOptions& o = s.options();
        const double density = static_cast<double>(s.nnz()) / static_cast<double>(s.in_features() * s.out_features());
        std::string act = o.activation == Activation::identity
                              ? ""
                              : std::string(", activation='") + activation_name(o.activation) + "'";
        return std::to_string(s.in_features()) + ", " + std::to_string(s.out_features()) +
               ", nnz=" + std::to_string(s.nnz()) + " (density " + num(density) + ")" +
               ", bias=" + (s.bias() ? "True" : "False") + act + (o.dropout > 0 ? ", dropout=" + num(o.dropout) : "");
      });
}

}  // namespace seisoku::python
