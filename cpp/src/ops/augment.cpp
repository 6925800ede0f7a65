// Front-ends of the augmentation family: the transform factories of seisoku::aug, which check
// their arguments, and the ops, which check their tensors and steps, plan the call on the host
// (augment_plan.cpp) and dispatch it. Every message reads "[name] argument 'x' must be ...,
// got ...", naming the seisoku.augment class (or the op) and the argument as Python spells it.
#include "seisoku/augment.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "augment_plan.hpp"
#include "core/dispatch.hpp"
#include "kernels/augment.hpp"

namespace seisoku {

namespace {

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

std::string pair(double a, double b) { return "(" + num(a) + ", " + num(b) + ")"; }

[[noreturn]] void fail(const char* name, const char* arg, const std::string& must) {
  throw std::invalid_argument(std::string("[") + name + "] argument '" + arg + "' must " + must);
}

// A (low, high) range with min_lo < low (or <=) and low <= high <= max_hi.
void check_range(const char* name, const char* arg, double lo, double hi, double min_lo, double max_hi,
                 bool open_min) {
  const bool lo_ok = std::isfinite(lo) && (open_min ? lo > min_lo : lo >= min_lo);
  if (!lo_ok || !std::isfinite(hi) || hi < lo || hi > max_hi)
    fail(name, arg,
         "satisfy " + num(min_lo) + (open_min ? " < " : " <= ") + "low <= high <= " + num(max_hi) + ", got " +
             pair(lo, hi));
}

void check_size(const char* name, std::int64_t h, std::int64_t w) {
  if (h < 1 || w < 1)
    fail(name, "size", "be at least 1 in both dimensions, got (" + std::to_string(h) + ", " + std::to_string(w) + ")");
}

}  // namespace

namespace aug {

const char* transform_name(AugmentOp op) {
  switch (op) {
    case AugmentOp::horizontal_flip: return "HorizontalFlip";
    case AugmentOp::vertical_flip: return "VerticalFlip";
    case AugmentOp::random_crop: return "RandomCrop";
    case AugmentOp::random_resized_crop: return "RandomResizedCrop";
    case AugmentOp::random_rotation: return "RandomRotation";
    case AugmentOp::cutout: return "Cutout";
    case AugmentOp::random_erasing: return "RandomErasing";
    case AugmentOp::elastic_distortion: return "ElasticDistortion";
    case AugmentOp::gaussian_noise: return "GaussianNoise";
  }
  return "?";
}

void check_step(const AugmentStep& s) {
  const char* name = transform_name(s.op);
  if (!(s.p >= 0.0 && s.p <= 1.0)) fail(name, "p", "be in [0, 1], got " + num(s.p));
  if (!std::isfinite(s.fill)) fail(name, "fill", "be finite, got " + num(s.fill));
  switch (s.op) {
    case AugmentOp::random_crop:
      check_size(name, s.height, s.width);
      if (s.padding < 0) fail(name, "padding", "be >= 0, got " + std::to_string(s.padding));
      break;
    case AugmentOp::random_resized_crop:
      check_size(name, s.height, s.width);
      check_range(name, "scale", s.scale_lo, s.scale_hi, 0.0, 1.0, true);
      check_range(name, "ratio", s.ratio_lo, s.ratio_hi, 0.0, 1e30, true);
      break;
    case AugmentOp::random_rotation: check_range(name, "degrees", s.degrees_lo, s.degrees_hi, -1e9, 1e9, false); break;
    case AugmentOp::cutout:
      if (s.count < 0) fail(name, "count", "be >= 0, got " + std::to_string(s.count));
      if (s.height < 1 || s.width != s.height) fail(name, "size", "be >= 1, got " + std::to_string(s.height));
      break;
    case AugmentOp::random_erasing:
      check_range(name, "scale", s.scale_lo, s.scale_hi, 0.0, 1.0, true);
      check_range(name, "ratio", s.ratio_lo, s.ratio_hi, 0.0, 1e30, true);
      break;
    case AugmentOp::elastic_distortion:
      if (!std::isfinite(s.alpha)) fail(name, "alpha", "be finite, got " + num(s.alpha));
      if (!(s.sigma >= 0.0 && s.sigma <= kMaxSigma)) fail(name, "sigma", "be in [0, 1e6] pixels, got " + num(s.sigma));
      break;
    case AugmentOp::gaussian_noise:
      if (!(s.std >= 0.0 && std::isfinite(s.std))) fail(name, "std", "be finite and >= 0, got " + num(s.std));
      break;
    default: break;
  }
  for (std::size_t i = 0; i < s.label_map.size(); ++i) {
    const auto [from, to] = s.label_map[i];
    const std::string entry = "{" + std::to_string(from) + ": " + (to == kSkip ? "'skip'" : std::to_string(to)) + "}";
    if (from < 0) fail(name, "label_map", "have labels >= 0 as keys, got " + entry);
    if (to < 0 && to != kSkip) fail(name, "label_map", "map each label to a label >= 0 or 'skip', got " + entry);
    for (std::size_t j = 0; j < i; ++j)
      if (s.label_map[j].first == from)
        fail(name, "label_map", "hold each label once, got " + std::to_string(from) + " twice");
    if (std::find(s.skip_labels.begin(), s.skip_labels.end(), from) != s.skip_labels.end())
      fail(name, "label_map", "not repeat a label of skip_labels (map it to 'skip' instead), got " + entry);
  }
}

AugmentStep with_label_map(AugmentStep step, LabelMap label_map) {
  step.label_map = std::move(label_map);
  check_step(step);
  return step;
}

std::int64_t mapped_label(const AugmentStep& step, std::int64_t label) {
  if (std::find(step.skip_labels.begin(), step.skip_labels.end(), label) != step.skip_labels.end()) return kSkip;
  if (label < 0) return label;
  for (const auto& [from, to] : step.label_map)
    if (from == label) return to;
  return label;
}

namespace {

AugmentStep checked(AugmentStep s, Labels skip_labels) {
  s.skip_labels = std::move(skip_labels);
  check_step(s);
  return s;
}

AugmentStep of(AugmentOp op, double p) {
  AugmentStep s;
  s.op = op;
  s.p = p;
  return s;
}

}  // namespace

AugmentStep horizontal_flip(double p, Labels skip_labels) {
  return checked(of(AugmentOp::horizontal_flip, p), std::move(skip_labels));
}

AugmentStep vertical_flip(double p, Labels skip_labels) {
  return checked(of(AugmentOp::vertical_flip, p), std::move(skip_labels));
}

AugmentStep random_crop(std::int64_t height, std::int64_t width, std::int64_t padding, Border border, double fill,
                        double p, Labels skip_labels) {
  AugmentStep s = of(AugmentOp::random_crop, p);
  s.height = height, s.width = width, s.padding = padding, s.border = border, s.fill = fill;
  return checked(s, std::move(skip_labels));
}

AugmentStep random_resized_crop(std::int64_t height, std::int64_t width, double scale_lo, double scale_hi,
                                double ratio_lo, double ratio_hi, Interpolation interpolation, double p,
                                Labels skip_labels) {
  AugmentStep s = of(AugmentOp::random_resized_crop, p);
  s.height = height, s.width = width, s.scale_lo = scale_lo, s.scale_hi = scale_hi;
  s.ratio_lo = ratio_lo, s.ratio_hi = ratio_hi, s.interpolation = interpolation, s.border = Border::edge;
  return checked(s, std::move(skip_labels));
}

AugmentStep random_rotation(double degrees_lo, double degrees_hi, Interpolation interpolation, Border border,
                            double fill, double p, Labels skip_labels) {
  AugmentStep s = of(AugmentOp::random_rotation, p);
  s.degrees_lo = degrees_lo, s.degrees_hi = degrees_hi, s.interpolation = interpolation, s.border = border;
  s.fill = fill;
  return checked(s, std::move(skip_labels));
}

AugmentStep cutout(std::int64_t count, std::int64_t size, double fill, double p, Labels skip_labels) {
  AugmentStep s = of(AugmentOp::cutout, p);
  s.count = count, s.height = size, s.width = size, s.fill = fill;
  return checked(s, std::move(skip_labels));
}

AugmentStep random_erasing(double scale_lo, double scale_hi, double ratio_lo, double ratio_hi, double fill,
                           bool random_fill, double p, Labels skip_labels) {
  AugmentStep s = of(AugmentOp::random_erasing, p);
  s.scale_lo = scale_lo, s.scale_hi = scale_hi, s.ratio_lo = ratio_lo, s.ratio_hi = ratio_hi, s.fill = fill;
  s.random_fill = random_fill;
  return checked(s, std::move(skip_labels));
}

AugmentStep elastic_distortion(double alpha, double sigma, Interpolation interpolation, Border border, double fill,
                               double p, Labels skip_labels) {
  AugmentStep s = of(AugmentOp::elastic_distortion, p);
  s.alpha = alpha, s.sigma = sigma, s.interpolation = interpolation, s.border = border, s.fill = fill;
  return checked(s, std::move(skip_labels));
}

AugmentStep gaussian_noise(double noise_std, double p, Labels skip_labels) {
  AugmentStep s = of(AugmentOp::gaussian_noise, p);
  s.std = noise_std;
  return checked(s, std::move(skip_labels));
}

}  // namespace aug

namespace {

using plan::Dims;

// The checks of the ops' tensors, in this family's message form.
[[noreturn]] void fail_op(const char* op, const char* arg, const std::string& must) { fail(op, arg, must); }

void check_tensor(const char* op, const char* arg, const Tensor& t, std::initializer_list<DType> dtypes) {
  if (!t.defined()) fail_op(op, arg, "be given, got nothing");
  std::string names;
  for (DType d : dtypes) {
    if (t.dtype() == d) return;
    names += std::string(names.empty() ? "" : " or ") + dtype_name(d);
  }
  fail_op(op, arg, "have dtype " + names + ", got " + dtype_name(t.dtype()));
}

std::string where(const Tensor& t) { return std::string(device_name(t.device())) + ":" + std::to_string(t.device_index()); }

// An output t: on the device of x, sharing no memory with the input `other`.
void check_beside(const char* op, const char* arg, const Tensor& t, const Tensor& x, const char* other_name,
                  const Tensor& other) {
  if (t.device() != x.device() || t.device_index() != x.device_index())
    fail_op(op, arg, "be on the device of x (" + where(x) + "), got " + where(t));
  const auto* a = static_cast<const char*>(t.data());
  const auto* b = static_cast<const char*>(other.data());
  if (t.numel() > 0 && other.numel() > 0 && a < b + other.nbytes() && b < a + t.nbytes())
    fail_op(op, arg, std::string("not share memory with ") + other_name + ", got overlapping arrays");
}

void check_shape(const char* op, const char* arg, const Tensor& t, const Shape& want) {
  if (t.shape() != want) fail_op(op, arg, "have shape " + shape_str(want) + ", got " + shape_str(t.shape()));
}

void check_image_shape(const char* op, const char* arg, const Shape& s, ImageLayout layout) {
  const char* form = layout == ImageLayout::nchw ? "(N, C, H, W)" : "(N, H, W, C)";
  if (s.size() != 4) fail_op(op, arg, std::string("be 4-D ") + form + ", got shape " + shape_str(s));
  const Dims d = plan::dims_of(s, layout);
  if (d.h < 1 || d.w < 1 || d.c < 1)
    fail_op(op, arg, std::string("have H, W, C >= 1 ") + form + ", got shape " + shape_str(s));
  if (d.h > (1 << 24) || d.w > (1 << 24))
    fail_op(op, arg, "have H and W at most 2^24, got shape " + shape_str(s));
}

void check_sigma(const char* op, double sigma) {
  if (!(sigma >= 0.0 && sigma <= kMaxSigma)) fail_op(op, "sigma", "be in [0, 1e6] pixels, got " + num(sigma));
}

// Checks every step as its factory would (hand-built steps), naming its place.
void check_steps(const std::vector<AugmentStep>& steps) {
  if (steps.size() >= (std::size_t{1} << 15))
    fail_op("augment", "steps", "hold at most 32767 transforms, got " + std::to_string(steps.size()));
  for (std::size_t k = 0; k < steps.size(); ++k) {
    try {
      aug::check_step(steps[k]);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string(e.what()) + " (steps[" + std::to_string(k) + "] of augment)");
    }
  }
}

}  // namespace

Shape augment_output_shape(const Shape& x_shape, const std::vector<AugmentStep>& steps, ImageLayout layout) {
  check_image_shape("augment", "x", x_shape, layout);
  check_steps(steps);
  Dims d = plan::dims_of(x_shape, layout);
  std::vector<std::vector<std::size_t>> members;
  const std::vector<StagePlan> stages = plan::make_stages(steps, d, layout, DType::float32, &members);
  if (!stages.empty()) d.h = stages.back().out.h, d.w = stages.back().out.w;
  return plan::shape_of(d, layout);
}

void augment(const Tensor& x, const Tensor& out, const std::vector<AugmentStep>& steps, ImageLayout layout,
             std::uint64_t seed, std::uint64_t sample_offset, const Tensor& labels, const Tensor& labels_out) {
  const char* op = "augment";
  check_tensor(op, "x", x, {DType::uint8, DType::float32});
  check_tensor(op, "out", out, {x.dtype()});
  check_beside(op, "out", out, x, "x", x);
  check_image_shape(op, "x", x.shape(), layout);
  check_steps(steps);
  const Dims d = plan::dims_of(x.shape(), layout);
  AugmentPlan plan;
  std::vector<std::vector<std::size_t>> members;
  plan.stages = plan::make_stages(steps, d, layout, x.dtype(), &members);
  Dims od = d;
  if (!plan.stages.empty()) od.h = plan.stages.back().out.h, od.w = plan.stages.back().out.w;
  check_shape(op, "out", out, plan::shape_of(od, layout));
  std::vector<std::int64_t> label_values;
  if (labels.defined()) {
    check_tensor(op, "labels", labels, {DType::int64, DType::int32});
    if (labels.is_cuda()) fail_op(op, "labels", "be on the CPU, got " + labels.describe());
    check_shape(op, "labels", labels, {d.n});
    label_values.resize(static_cast<std::size_t>(d.n));
    for (std::int64_t i = 0; i < d.n; ++i)
      label_values[static_cast<std::size_t>(i)] =
          labels.dtype() == DType::int64 ? labels.data_as<std::int64_t>()[i] : labels.data_as<std::int32_t>()[i];
  }
  if (labels_out.defined()) {
    if (!labels.defined()) fail_op(op, "labels_out", "come with labels, got labels_out without labels");
    check_tensor(op, "labels_out", labels_out, {DType::int64});
    if (labels_out.is_cuda()) fail_op(op, "labels_out", "be on the CPU, got " + labels_out.describe());
    check_shape(op, "labels_out", labels_out, {d.n});
  }
  if (d.n == 0) return;
  plan.n = d.n;
  plan.seed = seed;
  plan.sample_offset = sample_offset;
  for (const StagePlan& st : plan.stages)
    if (st.dst == kBufScratch0 || st.dst == kBufScratch1) plan.scratch = std::max(plan.scratch, st.out.size());
  const std::size_t ns = plan.stages.size();
  plan.samples.resize(static_cast<std::size_t>(d.n) * ns);
  for (std::int64_t i = 0; i < d.n; ++i)
    plan::plan_sample(steps, plan.stages, members, seed, sample_offset + static_cast<std::uint64_t>(i),
                label_values.empty() ? nullptr : &label_values[static_cast<std::size_t>(i)],
                plan.samples.data() + static_cast<std::size_t>(i) * ns, &plan.rects);
  if (labels_out.defined())
    std::copy(label_values.begin(), label_values.end(), labels_out.data_as<std::int64_t>());
  SEISOKU_DISPATCH(x, augment, x, out, plan);
}

void gaussian_smooth(const Tensor& x, const Tensor& out, double sigma) {
  const char* op = "gaussian_smooth";
  check_tensor(op, "x", x, {DType::float32});
  check_tensor(op, "out", out, {DType::float32});
  if (x.dim() != 3) fail_op(op, "x", "be 3-D (N, H, W), got shape " + shape_str(x.shape()));
  check_shape(op, "out", out, x.shape());
  check_beside(op, "out", out, x, "x", x);
  check_sigma(op, sigma);
  if (x.numel() == 0) return;
  SEISOKU_DISPATCH(x, gaussian_smooth, x, out, smooth_coef(sigma));
}

void elastic_displacement(const Tensor& out, double alpha, double sigma, std::uint64_t seed,
                          std::uint64_t sample_offset, std::int64_t step_index) {
  const char* op = "elastic_displacement";
  check_tensor(op, "out", out, {DType::float32});
  if (out.dim() != 4 || out.size(1) != 2)
    fail_op(op, "out", "have shape (N, 2, H, W), got " + shape_str(out.shape()));
  if (!std::isfinite(alpha)) fail_op(op, "alpha", "be finite, got " + num(alpha));
  check_sigma(op, sigma);
  if (step_index < 0 || step_index >= (std::int64_t{1} << 15))
    fail_op(op, "step_index", "be in [0, 32768), got " + std::to_string(step_index));
  if (out.numel() == 0) return;
  SEISOKU_DISPATCH(out, elastic_displacement, out, static_cast<float>(alpha), smooth_coef(sigma), seed, sample_offset,
                   step_index);
}

void displace(const Tensor& x, const Tensor& disp, const Tensor& out, ImageLayout layout, Interpolation interpolation,
              Border border, double fill) {
  const char* op = "displace";
  check_tensor(op, "x", x, {DType::uint8, DType::float32});
  check_tensor(op, "disp", disp, {DType::float32});
  check_tensor(op, "out", out, {x.dtype()});
  check_image_shape(op, "x", x.shape(), layout);
  check_shape(op, "out", out, x.shape());
  check_beside(op, "out", out, x, "x", x);
  check_beside(op, "out", out, x, "disp", disp);
  if (disp.device() != x.device() || disp.device_index() != x.device_index())
    fail_op(op, "disp", "be on the device of x (" + where(x) + "), got " + where(disp));
  const Dims d = plan::dims_of(x.shape(), layout);
  check_shape(op, "disp", disp, {d.n, 2, d.h, d.w});
  if (!std::isfinite(fill)) fail_op(op, "fill", "be finite, got " + num(fill));
  if (d.n == 0) return;
  SEISOKU_DISPATCH(x, displace, x, disp, out, image_shape(d.h, d.w, d.c, layout), interpolation, border,
                   plan::stored_fill(fill, x.dtype()));
}

}  // namespace seisoku
