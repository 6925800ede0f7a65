// Front-end of the optim family: validates groups and hyper-parameters, runs the gradient check
// and global-norm clipping, resolves each tensor's coefficients (step counts, penalize flags,
// bias corrections) into a plan, then dispatches the fused step to the device of each group.
#include "seisoku/optim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "core/check.hpp"
#include "kernels/optim.hpp"
#include "seisoku/elementwise.hpp"

namespace seisoku {
namespace {

constexpr const char* kOp = "optim_step";

std::string num(double v) {
  std::string s = std::to_string(v);
  if (std::isfinite(v) && std::fabs(v) < 1e-3 && v != 0.0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    s = buf;
  }
  return s;
}

void check_range(const char* name, double v, double lo, double hi, bool hi_open) {
  const bool ok = std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
  if (!ok)
    detail::fail(kOp, std::string(name) + " must be in [" + num(lo) + ", " + num(hi) + (hi_open ? ")" : "]") +
                          ", got " + num(v));
}

void check_nonneg(const char* name, double v) {
  if (!(std::isfinite(v) && v >= 0.0))
    detail::fail(kOp, std::string(name) + " must be finite and >= 0, got " + num(v));
}

std::string tensor_label(const OptimGroup& g, std::size_t gi, std::size_t i) {
  std::string where = "group " + std::to_string(gi) + ", tensor " + std::to_string(i);
  if (i < g.names.size() && !g.names[i].empty()) return "'" + g.names[i] + "' (" + where + ")";
  return where;
}

int normalized_axis(const OptimGroup& g, std::size_t gi, std::size_t i) {
  const Tensor& p = g.params[i];
  const int dim = static_cast<int>(std::max<std::int64_t>(p.dim(), 1));
  const int axis = g.hyper.max_norm_axis < 0 ? g.hyper.max_norm_axis + dim : g.hyper.max_norm_axis;
  if (axis < 0 || axis >= dim)
    detail::fail(kOp, "max_norm_axis " + std::to_string(g.hyper.max_norm_axis) + " is out of range for " +
                          tensor_label(g, gi, i) + " of shape " + shape_str(p.shape()));
  return axis;
}

bool penalized(const OptimGroup& g, std::size_t i) {
  return g.penalize.empty() ? g.params[i].dim() >= 2 : g.penalize[i] != 0;
}

// Appends (data pointer, group, tensor) of each non-empty parameter to `seen`, checked for
// duplicates once all groups are in (a sort, no allocation per tensor).
struct Seen {
  const void* data;
  std::size_t group, tensor;
};

void check_group(const OptimGroup& g, std::size_t gi, std::vector<Seen>& seen) {
  optim_check_hyper(g.hyper);
  const std::size_t n = g.params.size();
  const std::string gname = "group " + std::to_string(gi);
  if (g.grads.size() != n)
    detail::fail(kOp, gname + " has " + std::to_string(n) + " params but " + std::to_string(g.grads.size()) +
                          " grads");
  const std::vector<std::string> names = optim_state_names(g.hyper);
  if (g.state.size() != names.size())
    detail::fail(kOp, gname + " needs " + std::to_string(names.size()) + " state buffer list(s), got " +
                          std::to_string(g.state.size()) + " (call optim_init_state)");
  for (std::size_t k = 0; k < g.state.size(); ++k)
    if (g.state[k].size() != n)
      detail::fail(kOp, gname + " state '" + names[k] + "' has " + std::to_string(g.state[k].size()) +
                            " buffers for " + std::to_string(n) + " params");
  auto check_len = [&](const char* what, std::size_t len) {
    if (len != 0 && len != n)
      detail::fail(kOp, gname + " " + what + " has " + std::to_string(len) + " entries for " + std::to_string(n) +
                            " params");
  };
  check_len("penalize", g.penalize.size());
  check_len("steps", g.steps.size());
  check_len("names", g.names.size());
  const Tensor* first = n > 0 ? &g.params[0] : nullptr;
  for (std::size_t i = 0; i < n; ++i) {
    const Tensor& p = g.params[i];
    // Cheap tests first; the messages (with names) are built only for a failing tensor.
    auto same = [&](const Tensor& t) {
      return t.defined() && t.dtype() == p.dtype() && t.device() == p.device() &&
             t.device_index() == p.device_index() && t.shape() == p.shape();
    };
    bool ok = p.defined() && (p.dtype() == DType::float32 || p.dtype() == DType::float64) &&
              p.dtype() == first->dtype() && p.device() == first->device() &&
              p.device_index() == first->device_index() && same(g.grads[i]);
    for (std::size_t k = 0; ok && k < g.state.size(); ++k) ok = same(g.state[k][i]);
    if (!ok) {
      const std::string label = tensor_label(g, gi, i);
      const std::string pname = "param " + label;
      detail::check_defined(kOp, pname.c_str(), p);
      detail::check_dtype(kOp, pname.c_str(), p, {DType::float32, DType::float64});
      if (p.dtype() != first->dtype())
        detail::fail(kOp, "every tensor of a group must have one dtype: " + label + " is " + dtype_name(p.dtype()) +
                              ", tensor 0 is " + dtype_name(first->dtype()));
      if (p.device() != first->device() || p.device_index() != first->device_index())
        detail::fail(kOp, "every tensor of a group must be on one device: " + label + " is on " +
                              device_name(p.device()) + ":" + std::to_string(p.device_index()));
      auto like = [&](const std::string& what, const Tensor& t) {
        const std::string nm = what + " of " + label;
        detail::check_defined(kOp, nm.c_str(), t);
        detail::check_same_dtype(kOp, pname.c_str(), p, nm.c_str(), t);
        detail::check_same_shape(kOp, pname.c_str(), p, nm.c_str(), t);
        detail::check_same_device(kOp, pname.c_str(), p, nm.c_str(), t);
      };
      like("grad", g.grads[i]);
      for (std::size_t k = 0; k < g.state.size(); ++k) like("state '" + names[k] + "'", g.state[k][i]);
    }
    if (g.steps.size() == n && g.steps[i] < 0)
      detail::fail(kOp, "step count of " + tensor_label(g, gi, i) + " is negative: " + std::to_string(g.steps[i]));
    if (p.numel() > 0) seen.push_back({p.data(), gi, i});
    if (penalized(g, i) && g.hyper.max_norm > 0.0) normalized_axis(g, gi, i);
  }
}

// Resolves the per tensor coefficients of one group at its (already incremented) step counts.
detail::OptimPlan make_plan(const OptimGroup& g, std::size_t gi, double grad_scale) {
  const OptimHyper& h = g.hyper;
  detail::OptimPlan plan;
  plan.kind = h.kind;
  plan.dtype = g.params.empty() ? DType::float32 : g.params[0].dtype();
  plan.device_index = g.params.empty() ? 0 : g.params[0].device_index();
  plan.momentum = (h.kind == OptimKind::sgd || h.kind == OptimKind::rmsprop) && h.momentum != 0.0;
  plan.nesterov = h.kind == OptimKind::sgd && h.nesterov;
  plan.amsgrad = h.kind == OptimKind::adam && h.amsgrad;
  plan.centered = h.kind == OptimKind::rmsprop && h.centered;
  plan.s.mu = h.momentum;
  plan.s.damp1 = 1.0 - h.dampening;
  plan.s.beta1c = 1.0 - h.beta1;
  plan.s.beta2 = h.beta2;
  plan.s.beta2c = 1.0 - h.beta2;
  plan.s.alpha = h.alpha;
  plan.s.alphac = 1.0 - h.alpha;
  plan.s.eps = h.eps;
  plan.s.grad_scale = grad_scale;
  plan.s.clip_value = h.clip_value;
  // Slot roles of the state lists (see detail::OptimTensor).
  const std::vector<std::string> names = optim_state_names(h);
  auto slot = [&](const char* name) -> int {
    for (std::size_t k = 0; k < names.size(); ++k)
      if (names[k] == name) return static_cast<int>(k);
    return -1;
  };
  int roles[3] = {-1, -1, -1};
  switch (h.kind) {
    case OptimKind::sgd: roles[0] = slot("momentum_buffer"); break;
    case OptimKind::adam:
      roles[0] = slot("exp_avg");
      roles[1] = slot("exp_avg_sq");
      roles[2] = slot("max_exp_avg_sq");
      break;
    case OptimKind::rmsprop:
      roles[0] = slot("square_avg");
      roles[1] = slot("momentum_buffer");
      roles[2] = slot("grad_avg");
      break;
    case OptimKind::adagrad: roles[0] = slot("sum"); break;
  }
  const std::size_t n = g.params.size();
  plan.tensors.resize(n);
  // Adam's bias corrections of the last step count seen (tensors of a group mostly share it).
  std::int64_t corrected = -1;
  double step_size = 0.0, bc2_sqrt = 1.0;
  for (std::size_t i = 0; i < n; ++i) {
    detail::OptimTensor& t = plan.tensors[i];
    const Tensor& p = g.params[i];
    const double step = static_cast<double>(g.steps[i]);
    const bool pen = penalized(g, i);
    t.w = p.data();
    t.g = g.grads[i].data();
    void** s[3] = {&t.s0, &t.s1, &t.s2};
    for (int r = 0; r < 3; ++r)
      if (roles[r] >= 0) *s[r] = g.state[static_cast<std::size_t>(roles[r])][i].data();
    t.numel = p.numel();
    double lr = h.lr;
    if (h.kind == OptimKind::adagrad) lr = h.lr / (1.0 + (step - 1.0) * h.lr_decay);
    t.lr = lr;
    t.step_size = lr;
    if (h.kind == OptimKind::adam) {
      if (g.steps[i] != corrected) {
        corrected = g.steps[i];
        step_size = lr / (1.0 - std::pow(h.beta1, step));
        bc2_sqrt = std::sqrt(1.0 - std::pow(h.beta2, step));
      }
      t.step_size = step_size;
      t.bc2_sqrt = bc2_sqrt;
    }
    t.first = h.kind == OptimKind::sgd && g.steps[i] == 1;
    if (pen) {
      t.l2 = h.l2;
      t.l1_sub = h.l1_mode == L1Mode::subgradient ? h.l1 : 0.0;
      t.prox = h.l1_mode == L1Mode::proximal ? h.l1 * lr : 0.0;
      t.decay = 1.0 - h.lr * h.weight_decay;
      if (h.max_norm > 0.0 && normalized_axis(g, gi, i) == 0) {
        t.row = p.dim() == 0 || p.shape()[0] == 0 ? 1 : p.numel() / p.shape()[0];
        t.max_norm = h.max_norm;
      }
    }
    plan.prox = plan.prox || t.prox > 0.0;
  }
  return plan;
}

// Folds per tensor sums into one total in order.
double ordered_total(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s;
}

void project_strided(const Tensor& w, double max_norm, int axis) {
  std::int64_t outer = 1, inner = 1;
  const std::int64_t units = w.dim() == 0 ? 1 : w.shape()[static_cast<std::size_t>(axis)];
  for (int d = 0; d < axis; ++d) outer *= w.shape()[static_cast<std::size_t>(d)];
  for (std::int64_t d = axis + 1; d < w.dim(); ++d) inner *= w.shape()[static_cast<std::size_t>(d)];
  if (w.numel() == 0) return;
  SEISOKU_DISPATCH(w, max_norm_project, w, max_norm, outer, units, inner);
}

}  // namespace

std::vector<std::string> optim_state_names(const OptimHyper& h) {
  switch (h.kind) {
    case OptimKind::sgd:
      if (h.momentum != 0.0) return {"momentum_buffer"};
      return {};
    case OptimKind::adam:
      if (h.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
      return {"exp_avg", "exp_avg_sq"};
    case OptimKind::rmsprop: {
      std::vector<std::string> names = {"square_avg"};
      if (h.momentum != 0.0) names.emplace_back("momentum_buffer");
      if (h.centered) names.emplace_back("grad_avg");
      return names;
    }
    case OptimKind::adagrad: return {"sum"};
  }
  detail::fail(kOp, "unknown optimizer kind");
}

void optim_check_hyper(const OptimHyper& h) {
  if (h.kind != OptimKind::sgd && h.kind != OptimKind::adam && h.kind != OptimKind::rmsprop &&
      h.kind != OptimKind::adagrad)
    detail::fail(kOp, "unknown optimizer kind " + std::to_string(static_cast<int>(h.kind)));
  check_nonneg("lr", h.lr);
  check_nonneg("l2", h.l2);
  check_nonneg("l1", h.l1);
  check_nonneg("weight_decay", h.weight_decay);
  check_nonneg("max_norm", h.max_norm);
  if (!(h.clip_value > 0.0)) detail::fail(kOp, "clip_value must be > 0 (infinity: off), got " + num(h.clip_value));
  if (h.l1_mode != L1Mode::proximal && h.l1_mode != L1Mode::subgradient) detail::fail(kOp, "unknown l1_mode");
  if (h.lr * h.weight_decay > 1.0)
    detail::fail(kOp, "lr * weight_decay must be <= 1 (the decay multiplier 1 - lr * weight_decay would be "
                      "negative), got " + num(h.lr * h.weight_decay));
  switch (h.kind) {
    case OptimKind::sgd:
      check_nonneg("momentum", h.momentum);
      check_range("dampening", h.dampening, 0.0, 1.0, false);
      if (h.nesterov && (h.momentum <= 0.0 || h.dampening != 0.0))
        detail::fail(kOp, "nesterov needs momentum > 0 and dampening 0, got momentum " + num(h.momentum) +
                              ", dampening " + num(h.dampening));
      break;
    case OptimKind::adam:
      check_range("beta1", h.beta1, 0.0, 1.0, true);
      check_range("beta2", h.beta2, 0.0, 1.0, true);
      check_nonneg("eps", h.eps);
      break;
    case OptimKind::rmsprop:
      check_nonneg("momentum", h.momentum);
      check_range("alpha", h.alpha, 0.0, 1.0, false);
      check_nonneg("eps", h.eps);
      break;
    case OptimKind::adagrad:
      check_nonneg("lr_decay", h.lr_decay);
      check_nonneg("initial_accumulator", h.initial_accumulator);
      check_nonneg("eps", h.eps);
      break;
  }
}

void optim_init_state(OptimGroup& g) {
  optim_check_hyper(g.hyper);
  const std::vector<std::string> names = optim_state_names(g.hyper);
  g.state.assign(names.size(), {});
  for (std::size_t k = 0; k < names.size(); ++k) {
    for (std::size_t i = 0; i < g.params.size(); ++i) {
      const Tensor& p = g.params[i];
      detail::check_defined(kOp, "param", p);
      detail::check_dtype(kOp, "param", p, {DType::float32, DType::float64});
      Tensor s = Tensor::zeros(p.shape(), p.dtype(), p.device(), p.device_index());
      if (names[k] == "sum" && g.hyper.initial_accumulator != 0.0) fill(s, g.hyper.initial_accumulator);
      g.state[k].push_back(s);
    }
  }
  g.steps.assign(g.params.size(), 0);
}

OptimStepResult optim_step(const std::vector<OptimGroup*>& groups, const OptimStepOptions& options) {
  if (!(std::isfinite(options.clip_grad_norm) && options.clip_grad_norm >= 0.0))
    detail::fail(kOp, "clip_grad_norm must be finite and >= 0 (0: off), got " + num(options.clip_grad_norm));
  if (options.nonfinite != NonFinite::raise && options.nonfinite != NonFinite::skip &&
      options.nonfinite != NonFinite::ignore)
    detail::fail(kOp, "unknown nonfinite policy");
  std::vector<Seen> seen;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    if (groups[gi] == nullptr) detail::fail(kOp, "group " + std::to_string(gi) + " is null");
    seen.reserve(seen.size() + groups[gi]->params.size());
    check_group(*groups[gi], gi, seen);
  }
  std::sort(seen.begin(), seen.end(), [](const Seen& a, const Seen& b) {
    return std::less<const void*>()(a.data, b.data) ||
           (a.data == b.data && (a.group < b.group || (a.group == b.group && a.tensor < b.tensor)));
  });
  for (std::size_t k = 1; k < seen.size(); ++k)
    if (seen[k].data == seen[k - 1].data)
      detail::fail(kOp, "param " + tensor_label(*groups[seen[k].group], seen[k].group, seen[k].tensor) +
                            " appears twice (a parameter may be stepped only once per step)");
  OptimStepResult result;
  double grad_scale = 1.0;
  const bool clip = options.clip_grad_norm > 0.0;
  // raise without clipping: the check rides on the step's own pass (no extra read).
  // skip, or any policy with clipping: one pass over every gradient first (the norm pass).
  const bool fused_check = options.nonfinite == NonFinite::raise && !clip;
  if (clip || options.nonfinite == NonFinite::skip) {
    std::vector<double> group_sumsq;
    for (std::size_t gi = 0; gi < groups.size(); ++gi) {
      const OptimGroup& g = *groups[gi];
      if (g.params.empty()) continue;
      std::vector<double> sumsq(g.params.size(), 0.0);
      std::vector<std::int64_t> bad(g.params.size(), 0);
      SEISOKU_DISPATCH(g.params[0], optim_grad_check, g.grads, clip, sumsq, bad);
      if (options.nonfinite != NonFinite::ignore) {
        for (std::size_t i = 0; i < bad.size(); ++i) {
          if (bad[i] == 0) continue;
          if (options.nonfinite == NonFinite::skip) {
            result.applied = false;
            return result;
          }
          detail::fail(kOp, "the gradient of " + tensor_label(g, gi, i) + " holds " + std::to_string(bad[i]) +
                                " non-finite value(s) (NaN or Inf); no parameter was changed");
        }
      }
      group_sumsq.push_back(ordered_total(sumsq));
    }
    if (clip) {
      result.grad_norm = std::sqrt(ordered_total(group_sumsq));
      grad_scale = std::min(1.0, options.clip_grad_norm / (result.grad_norm + 1e-6));
    }
  }
  // The first tensor (in group and tensor order) whose gradient held NaN or Inf, its count, and
  // how many tensors did.
  std::string first_bad;
  std::int64_t first_count = 0, bad_tensors = 0;
  std::vector<std::int64_t> nonfinite;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    OptimGroup& g = *groups[gi];
    if (g.steps.empty()) g.steps.assign(g.params.size(), 0);
    for (std::int64_t& s : g.steps) ++s;
    if (g.params.empty()) continue;
    const detail::OptimPlan plan = make_plan(g, gi, grad_scale);
    std::int64_t* counts = nullptr;
    if (fused_check) {
      nonfinite.assign(g.params.size(), 0);
      counts = nonfinite.data();
    }
    SEISOKU_DISPATCH(g.params[0], optim_step, plan, counts);
    for (std::size_t i = 0; counts != nullptr && i < g.params.size(); ++i) {
      if (counts[i] == 0) continue;
      --g.steps[i];  // not fully stepped: its step count stays
      if (bad_tensors++ == 0) {
        first_bad = tensor_label(g, gi, i);
        first_count = counts[i];
      }
    }
    if (g.hyper.max_norm > 0.0)
      for (std::size_t i = 0; i < g.params.size(); ++i)
        if (penalized(g, i) && plan.tensors[i].row == 0 && (counts == nullptr || counts[i] == 0))
          project_strided(g.params[i], g.hyper.max_norm, normalized_axis(g, gi, i));
  }
  if (bad_tensors > 0)
    detail::fail(kOp, "the gradient of " + first_bad + " holds " + std::to_string(first_count) +
                          " non-finite value(s) (NaN or Inf)" +
                          (bad_tensors > 1 ? " (" + std::to_string(bad_tensors - 1) + " more tensor(s) too)" : "") +
                          "; their elements (rows, under a fused max-norm) were not stepped, nor their state, "
                          "and those tensors' step counts not advanced; every other element was stepped "
                          "(see seisoku/optim.hpp)");
  return result;
}

OptimStepResult optim_step(OptimGroup& group, const OptimStepOptions& options) {
  return optim_step(std::vector<OptimGroup*>{&group}, options);
}

void optim_zero_grad(const OptimGroup& g) {
  for (const Tensor& t : g.grads) {
    detail::check_defined("optim_zero_grad", "grad", t);
    fill(t, 0.0);
  }
}

OptimStats optim_stats(const OptimGroup& g) {
  const std::size_t n = g.params.size();
  if (g.penalize.size() != 0 && g.penalize.size() != n)
    detail::fail("optim_stats", "penalize has " + std::to_string(g.penalize.size()) + " entries for " +
                                    std::to_string(n) + " params");
  OptimStats st;
  st.abs_sum.assign(n, 0.0);
  st.sq_sum.assign(n, 0.0);
  st.nonzero.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    detail::check_defined("optim_stats", "param", g.params[i]);
    detail::check_dtype("optim_stats", "param", g.params[i], {DType::float32, DType::float64});
    if (i > 0) {
      detail::check_same_dtype("optim_stats", "param 0", g.params[0], "param", g.params[i]);
      detail::check_same_device("optim_stats", "param 0", g.params[0], "param", g.params[i]);
    }
  }
  if (n == 0) return st;
  SEISOKU_DISPATCH(g.params[0], optim_stats, g.params, st.abs_sum, st.sq_sum, st.nonzero);
  for (std::size_t i = 0; i < n; ++i)
    if (penalized(g, i)) st.penalty += g.hyper.l1 * st.abs_sum[i] + 0.5 * g.hyper.l2 * st.sq_sum[i];
  return st;
}

void max_norm_project(const Tensor& w, double max_norm, int axis) {
  const char* op = "max_norm_project";
  detail::check_defined(op, "w", w);
  detail::check_dtype(op, "w", w, {DType::float32, DType::float64});
  if (!(std::isfinite(max_norm) && max_norm > 0.0))
    detail::fail(op, "max_norm must be finite and > 0, got " + num(max_norm));
  const int dim = static_cast<int>(std::max<std::int64_t>(w.dim(), 1));
  const int a = axis < 0 ? axis + dim : axis;
  if (a < 0 || a >= dim)
    detail::fail(op, "axis " + std::to_string(axis) + " is out of range for shape " + shape_str(w.shape()));
  project_strided(w, max_norm, a);
}

}  // namespace seisoku
