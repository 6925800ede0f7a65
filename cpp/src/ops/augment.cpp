// Front-ends of the augmentation family: validate the pipeline and the tensors, then plan the
// call on the host (stages, buffers, every sample's random parameters) and dispatch it.
#include "seisoku/augment.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <sstream>
#include <string>

#include "core/check.hpp"
#include "kernels/augment.hpp"

namespace seisoku {

namespace aug {

AugmentStep horizontal_flip(double p) {
  AugmentStep s;
  s.op = AugmentOp::horizontal_flip;
  s.p = p;
  return s;
}

AugmentStep vertical_flip(double p) {
  AugmentStep s;
  s.op = AugmentOp::vertical_flip;
  s.p = p;
  return s;
}

AugmentStep random_crop(std::int64_t height, std::int64_t width, std::int64_t padding, Border border, double fill,
                        double p) {
  AugmentStep s;
  s.op = AugmentOp::random_crop;
  s.height = height, s.width = width, s.padding = padding, s.border = border, s.fill = fill, s.p = p;
  return s;
}

AugmentStep random_resized_crop(std::int64_t height, std::int64_t width, double scale_lo, double scale_hi,
                                double ratio_lo, double ratio_hi, Interp interp, double p) {
  AugmentStep s;
  s.op = AugmentOp::random_resized_crop;
  s.height = height, s.width = width, s.lo = scale_lo, s.hi = scale_hi, s.ratio_lo = ratio_lo;
  s.ratio_hi = ratio_hi, s.interp = interp, s.border = Border::edge, s.p = p;
  return s;
}

AugmentStep random_rotation(double deg_lo, double deg_hi, Interp interp, Border border, double fill, double p) {
  AugmentStep s;
  s.op = AugmentOp::random_rotation;
  s.lo = deg_lo, s.hi = deg_hi, s.interp = interp, s.border = border, s.fill = fill, s.p = p;
  return s;
}

AugmentStep cutout(std::int64_t count, std::int64_t size, double fill, double p) {
  AugmentStep s;
  s.op = AugmentOp::cutout;
  s.count = count, s.height = size, s.width = size, s.fill = fill, s.p = p;
  return s;
}

AugmentStep random_erasing(double p, double scale_lo, double scale_hi, double ratio_lo, double ratio_hi, double fill,
                           bool random_fill) {
  AugmentStep s;
  s.op = AugmentOp::random_erasing;
  s.p = p, s.lo = scale_lo, s.hi = scale_hi, s.ratio_lo = ratio_lo, s.ratio_hi = ratio_hi, s.fill = fill;
  s.random_fill = random_fill;
  return s;
}

AugmentStep elastic_distortion(double alpha, double sigma, Interp interp, Border border, double fill, double p) {
  AugmentStep s;
  s.op = AugmentOp::elastic_distortion;
  s.alpha = alpha, s.sigma = sigma, s.interp = interp, s.border = border, s.fill = fill, s.p = p;
  return s;
}

AugmentStep gaussian_noise(double stddev, double p) {
  AugmentStep s;
  s.op = AugmentOp::gaussian_noise;
  s.stddev = stddev, s.p = p;
  return s;
}

}  // namespace aug

namespace {

using detail::fail;
constexpr const char* kOp = "augment";

const char* op_name(AugmentOp op) {
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

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// "[augment] RandomCrop (step 2): " + msg
[[noreturn]] void step_fail(std::size_t k, const AugmentStep& s, const std::string& msg) {
  fail(kOp, std::string(op_name(s.op)) + " (step " + std::to_string(k) + "): " + msg);
}

void check_range(std::size_t k, const AugmentStep& s, const char* name, double lo, double hi, double min_lo,
                 double max_hi, bool open_min) {
  const bool lo_ok = std::isfinite(lo) && (open_min ? lo > min_lo : lo >= min_lo);
  if (!lo_ok || !std::isfinite(hi) || hi < lo || hi > max_hi)
    step_fail(k, s, std::string(name) + " must satisfy " + num(min_lo) + (open_min ? " < " : " <= ") + "lo <= hi <= " +
                        num(max_hi) + ", got (" + num(lo) + ", " + num(hi) + ")");
}

void check_step(std::size_t k, const AugmentStep& s) {
  if (!(s.p >= 0.0 && s.p <= 1.0)) step_fail(k, s, "p must be in [0, 1], got " + num(s.p));
  if (!std::isfinite(s.fill)) step_fail(k, s, "fill must be finite, got " + num(s.fill));
  switch (s.op) {
    case AugmentOp::random_crop:
      if (s.height < 1 || s.width < 1)
        step_fail(k, s, "size must be >= 1, got " + std::to_string(s.height) + "x" + std::to_string(s.width));
      if (s.padding < 0) step_fail(k, s, "padding must be >= 0, got " + std::to_string(s.padding));
      break;
    case AugmentOp::random_resized_crop:
      if (s.height < 1 || s.width < 1)
        step_fail(k, s, "size must be >= 1, got " + std::to_string(s.height) + "x" + std::to_string(s.width));
      check_range(k, s, "scale", s.lo, s.hi, 0.0, 1.0, true);
      check_range(k, s, "ratio", s.ratio_lo, s.ratio_hi, 0.0, 1e30, true);
      break;
    case AugmentOp::random_rotation:
      check_range(k, s, "degrees", s.lo, s.hi, -1e9, 1e9, false);
      break;
    case AugmentOp::cutout:
      if (s.count < 0) step_fail(k, s, "count must be >= 0, got " + std::to_string(s.count));
      if (s.height < 1) step_fail(k, s, "size must be >= 1, got " + std::to_string(s.height));
      break;
    case AugmentOp::random_erasing:
      check_range(k, s, "scale", s.lo, s.hi, 0.0, 1.0, true);
      check_range(k, s, "ratio", s.ratio_lo, s.ratio_hi, 0.0, 1e30, true);
      break;
    case AugmentOp::elastic_distortion:
      if (!std::isfinite(s.alpha)) step_fail(k, s, "alpha must be finite, got " + num(s.alpha));
      if (!(s.sigma >= 0.0 && s.sigma <= kMaxSigma))
        step_fail(k, s, "sigma must be in [0, 1e6], got " + num(s.sigma));
      break;
    case AugmentOp::gaussian_noise:
      if (!(s.stddev >= 0.0 && std::isfinite(s.stddev)))
        step_fail(k, s, "stddev must be finite and >= 0, got " + num(s.stddev));
      break;
    default: break;
  }
}

bool is_geometric(AugmentOp op) {
  return op == AugmentOp::horizontal_flip || op == AugmentOp::vertical_flip || op == AugmentOp::random_crop ||
         op == AugmentOp::random_resized_crop || op == AugmentOp::random_rotation;
}

// A transform that can read outside its input (and so brings a border).
bool is_bordered(AugmentOp op) { return is_geometric(op) && op != AugmentOp::horizontal_flip && op != AugmentOp::vertical_flip; }

struct Dims {
  std::int64_t n, h, w, c;
};

Dims dims_of(const Shape& s, ImageLayout layout) {
  return layout == ImageLayout::nchw ? Dims{s[0], s[2], s[3], s[1]} : Dims{s[0], s[1], s[2], s[3]};
}

Shape shape_of(const Dims& d, ImageLayout layout) {
  return layout == ImageLayout::nchw ? Shape{d.n, d.c, d.h, d.w} : Shape{d.n, d.h, d.w, d.c};
}

void check_image_shape(const char* op, const char* name, const Shape& s, ImageLayout layout) {
  const char* form = layout == ImageLayout::nchw ? "(N, C, H, W)" : "(N, H, W, C)";
  if (s.size() != 4) fail(op, std::string(name) + " must be 4-D " + form + ", got shape " + shape_str(s));
  const Dims d = dims_of(s, layout);
  if (d.h < 1 || d.w < 1 || d.c < 1)
    fail(op, std::string(name) + " must have H, W, C >= 1 " + form + ", got shape " + shape_str(s));
  if (d.h > (1 << 24) || d.w > (1 << 24))
    fail(op, std::string(name) + " is too large: H and W must be at most 2^24, got shape " + shape_str(s));
}

float stored_fill(double fill, DType dtype) {
  if (dtype == DType::uint8) return static_cast<float>(std::floor(std::clamp(fill, 0.0, 255.0) + 0.5));
  return static_cast<float>(fill);
}

// The draws of one (sample, step): 32-bit words of consecutive Philox blocks.
class StepDraws {
 public:
  StepDraws(std::uint64_t seed, std::uint64_t offset, std::size_t step)
      : seed_(seed), offset_(offset), base_(step_block(static_cast<std::int64_t>(step), 0)) {}
  std::uint32_t word() {
    if (used_ == 4) {
      block_ = philox::draw(seed_, offset_, base_ + next_++);
      used_ = 0;
    }
    return block_.v[used_++];
  }
  double uniform() {  // [0, 1), 53 bits
    const std::uint32_t a = word(), b = word();
    return philox::to_unit_double(a, b);
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  std::int64_t randint(std::int64_t lo, std::int64_t hi) {  // inclusive
    const std::int64_t span = hi - lo + 1;
    return lo + std::min(span - 1, static_cast<std::int64_t>(uniform() * static_cast<double>(span)));
  }

 private:
  std::uint64_t seed_, offset_, base_, next_ = 0;
  philox::Block block_{};
  int used_ = 4;
};

// 2x3 affine maps in double: (x, y) -> (a0 x + a1 y + a2, a3 x + a4 y + a5).
struct Affine {
  double a[6];
};
constexpr Affine kIdentity{{1, 0, 0, 0, 1, 0}};

Affine compose(const Affine& m, const Affine& b) {  // m after b: x -> m(b(x))
  return Affine{{m.a[0] * b.a[0] + m.a[1] * b.a[3], m.a[0] * b.a[1] + m.a[1] * b.a[4],
                 m.a[0] * b.a[2] + m.a[1] * b.a[5] + m.a[2], m.a[3] * b.a[0] + m.a[4] * b.a[3],
                 m.a[3] * b.a[1] + m.a[4] * b.a[4], m.a[3] * b.a[2] + m.a[4] * b.a[5] + m.a[5]}};
}

// Box (x0, y0, width, height) of a resized crop, torchvision's rule.
void resized_crop_box(StepDraws& d, const AugmentStep& s, std::int64_t h, std::int64_t w, double box[4]) {
  const double area = static_cast<double>(h) * static_cast<double>(w);
  const double log_lo = std::log(s.ratio_lo), log_hi = std::log(s.ratio_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * d.uniform(s.lo, s.hi);
    const double ratio = std::exp(d.uniform(log_lo, log_hi));
    const auto cw = static_cast<std::int64_t>(std::nearbyint(std::sqrt(target * ratio)));
    const auto ch = static_cast<std::int64_t>(std::nearbyint(std::sqrt(target / ratio)));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      box[1] = static_cast<double>(d.randint(0, h - ch));
      box[0] = static_cast<double>(d.randint(0, w - cw));
      box[2] = static_cast<double>(cw);
      box[3] = static_cast<double>(ch);
      return;
    }
  }
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  std::int64_t cw = w, ch = h;
  if (in_ratio < s.ratio_lo) ch = std::max<std::int64_t>(1, std::llround(static_cast<double>(w) / s.ratio_lo));
  else if (in_ratio > s.ratio_hi) cw = std::max<std::int64_t>(1, std::llround(static_cast<double>(h) * s.ratio_hi));
  ch = std::min(ch, h), cw = std::min(cw, w);
  box[0] = static_cast<double>((w - cw) / 2), box[1] = static_cast<double>((h - ch) / 2);
  box[2] = static_cast<double>(cw), box[3] = static_cast<double>(ch);
}

// The map of one geometric step from its output pixels to its input pixels; `applied` false
// gives the step's neutral form (identity, centre crop, resize of the whole image).
Affine step_map(const AugmentStep& s, bool applied, StepDraws& d, std::int64_t h, std::int64_t w) {
  const double hd = static_cast<double>(h), wd = static_cast<double>(w);
  switch (s.op) {
    case AugmentOp::horizontal_flip: return applied ? Affine{{-1, 0, wd - 1, 0, 1, 0}} : kIdentity;
    case AugmentOp::vertical_flip: return applied ? Affine{{1, 0, 0, 0, -1, hd - 1}} : kIdentity;
    case AugmentOp::random_crop: {
      const std::int64_t ry = h + 2 * s.padding - s.height, rx = w + 2 * s.padding - s.width;
      const std::int64_t oy = applied ? d.randint(0, ry) : ry / 2;
      const std::int64_t ox = applied ? d.randint(0, rx) : rx / 2;
      return Affine{{1, 0, static_cast<double>(ox - s.padding), 0, 1, static_cast<double>(oy - s.padding)}};
    }
    case AugmentOp::random_resized_crop: {
      double box[4] = {0, 0, wd, hd};
      if (applied) resized_crop_box(d, s, h, w, box);
      const double sx = box[2] / static_cast<double>(s.width), sy = box[3] / static_cast<double>(s.height);
      return Affine{{sx, 0, box[0] + 0.5 * sx - 0.5, 0, sy, box[1] + 0.5 * sy - 0.5}};
    }
    case AugmentOp::random_rotation: {
      if (!applied) return kIdentity;
      const double deg = d.uniform(s.lo, s.hi);
      double t = deg / 360.0;
      t -= std::floor(t);
      if (t >= 1.0) t = 0.0;
      double sn, cs;
      philox::sincos_2pi(t, &sn, &cs);
      const double cx = (wd - 1) / 2, cy = (hd - 1) / 2;
      // source = R(angle) (p - c) + c with y down, counter-clockwise as displayed.
      return Affine{{cs, -sn, cx - cs * cx + sn * cy, sn, cs, cy - sn * cx - cs * cy}};
    }
    default: return kIdentity;
  }
}

void output_size(const AugmentStep& s, std::int64_t* h, std::int64_t* w) {
  if (s.op == AugmentOp::random_crop || s.op == AugmentOp::random_resized_crop) *h = s.height, *w = s.width;
}

bool is_integral(double v) { return std::floor(v) == v && std::fabs(v) < 1e9; }

bool skips_label(const AugmentStep& s, const std::int64_t* label) {
  return label != nullptr && std::find(s.skip_labels.begin(), s.skip_labels.end(), *label) != s.skip_labels.end();
}

// Groups the steps into stages and routes the buffers; sizes follow the steps.
std::vector<StagePlan> make_stages(const std::vector<AugmentStep>& steps, const Dims& d, ImageLayout layout,
                                   DType dtype, std::vector<std::vector<std::size_t>>* members) {
  std::vector<StagePlan> stages;
  members->clear();
  std::int64_t h = d.h, w = d.w;
  bool open_geo = false, geo_bordered = false;
  if (steps.size() >= (std::size_t{1} << 15))
    fail(kOp, "a pipeline holds at most 32767 steps, got " + std::to_string(steps.size()));
  for (std::size_t k = 0; k < steps.size(); ++k) {
    const AugmentStep& s = steps[k];
    check_step(k, s);
    if (s.op == AugmentOp::random_crop && (s.height > h + 2 * s.padding || s.width > w + 2 * s.padding))
      step_fail(k, s, "size " + std::to_string(s.height) + "x" + std::to_string(s.width) +
                          " is larger than the padded image " + std::to_string(h + 2 * s.padding) + "x" +
                          std::to_string(w + 2 * s.padding) + " (" + std::to_string(h) + "x" + std::to_string(w) +
                          " with padding " + std::to_string(s.padding) + ")");
    StagePlan st{};
    st.step = static_cast<std::int32_t>(k);
    st.in = image_shape(h, w, d.c, layout);
    st.fill = stored_fill(s.fill, dtype);
    st.interp = s.interp;
    st.border = s.border;
    if (is_geometric(s.op)) {
      if (!open_geo || (geo_bordered && is_bordered(s.op))) {
        st.kind = StageKind::geometric;
        st.interp = Interp::nearest;
        st.border = Border::edge;
        st.fill = 0.0f;
        stages.push_back(st);
        members->push_back({});
        open_geo = true;
        geo_bordered = false;
      }
      StagePlan& g = stages.back();
      if (is_bordered(s.op)) {
        geo_bordered = true;
        g.interp = s.op == AugmentOp::random_crop ? Interp::nearest : s.interp;
        g.border = s.border;
        g.fill = stored_fill(s.fill, dtype);
      }
      output_size(s, &h, &w);
      g.out = image_shape(h, w, d.c, layout);
      members->back().push_back(k);
      continue;
    }
    open_geo = false;
    st.out = st.in;
    members->push_back({k});
    switch (s.op) {
      case AugmentOp::elastic_distortion:
        st.kind = StageKind::elastic;
        st.alpha = static_cast<float>(s.alpha);
        st.smooth = smooth_coef(s.sigma);
        break;
      case AugmentOp::gaussian_noise:
        st.kind = StageKind::noise;
        st.stddev = static_cast<float>(s.stddev);
        break;
      default:
        st.kind = StageKind::fill;
        st.random_fill = s.random_fill;
        break;
    }
    stages.push_back(st);
  }
  // Buffers: resampling stages write a new image (the last one into out), fill and noise
  // stages work in place (after a copy when they would otherwise write into x).
  std::int64_t last_resample = -1;
  for (std::size_t i = 0; i < stages.size(); ++i)
    if (stages[i].kind == StageKind::geometric || stages[i].kind == StageKind::elastic)
      last_resample = static_cast<std::int64_t>(i);
  std::int32_t cur = kBufX;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    StagePlan& st = stages[i];
    st.src = cur;
    if (st.kind == StageKind::geometric || st.kind == StageKind::elastic) {
      st.dst = static_cast<std::int64_t>(i) == last_resample ? kBufOut : (cur == kBufScratch0 ? kBufScratch1 : kBufScratch0);
    } else {
      st.dst = cur != kBufX ? cur : (last_resample > static_cast<std::int64_t>(i) ? kBufScratch0 : kBufOut);
    }
    cur = st.dst;
  }
  return stages;
}

// Draws sample i's parameters for every stage.
void plan_sample(const std::vector<AugmentStep>& steps, const std::vector<StagePlan>& stages,
                 const std::vector<std::vector<std::size_t>>& members, std::uint64_t seed, std::uint64_t offset,
                 const std::int64_t* label, SampleStage* out, std::vector<std::int32_t>* rects) {
  for (std::size_t si = 0; si < stages.size(); ++si) {
    const StagePlan& st = stages[si];
    SampleStage& ss = out[si];
    ss = SampleStage{{1, 0, 0, 0, 1, 0}, 0, 0, 0};
    if (st.kind == StageKind::geometric) {
      Affine m = kIdentity;
      std::int64_t h = st.in.h, w = st.in.w;
      for (std::size_t k : members[si]) {
        const AugmentStep& s = steps[k];
        StepDraws d(seed, offset, k);
        const bool applied = d.uniform() < s.p && !skips_label(s, label);
        m = compose(m, step_map(s, applied, d, h, w));
        output_size(s, &h, &w);
      }
      bool integral = true;
      for (double v : m.a) integral = integral && is_integral(v);
      const bool axis = m.a[1] == 0 && m.a[3] == 0 && std::fabs(m.a[0]) == 1 && std::fabs(m.a[4]) == 1;
      const bool identity = axis && m.a[0] == 1 && m.a[4] == 1 && m.a[2] == 0 && m.a[5] == 0 && st.in.h == st.out.h &&
                            st.in.w == st.out.w;
      ss.mode = identity ? kGeoCopy : (integral && axis ? kGeoRows : (integral ? kGeoNearest : kGeoInterp));
      for (int i = 0; i < 6; ++i) ss.m[i] = static_cast<float>(m.a[i]);
      continue;
    }
    const std::size_t k = members[si][0];
    const AugmentStep& s = steps[k];
    StepDraws d(seed, offset, k);
    const bool applied = d.uniform() < s.p && !skips_label(s, label);
    ss.mode = applied ? 1 : 0;
    if (st.kind != StageKind::fill || !applied) continue;
    const std::int64_t h = st.in.h, w = st.in.w;
    ss.rect_begin = static_cast<std::int32_t>(rects->size() / 4);
    auto add_rect = [&](std::int64_t x0, std::int64_t y0, std::int64_t x1, std::int64_t y1) {
      rects->insert(rects->end(), {static_cast<std::int32_t>(x0), static_cast<std::int32_t>(y0),
                                   static_cast<std::int32_t>(x1), static_cast<std::int32_t>(y1)});
      ++ss.rect_count;
    };
    if (s.op == AugmentOp::cutout) {
      for (std::int64_t c = 0; c < s.count; ++c) {
        const std::int64_t cy = d.randint(0, h - 1), cx = d.randint(0, w - 1);
        const std::int64_t y0 = cy - s.height / 2, x0 = cx - s.height / 2;
        add_rect(std::max<std::int64_t>(x0, 0), std::max<std::int64_t>(y0, 0), std::min(x0 + s.height, w),
                 std::min(y0 + s.height, h));
      }
    } else {  // random erasing
      const double area = static_cast<double>(h) * static_cast<double>(w);
      const double log_lo = std::log(s.ratio_lo), log_hi = std::log(s.ratio_hi);
      for (int attempt = 0; attempt < 10; ++attempt) {
        const double target = area * d.uniform(s.lo, s.hi);
        const double ratio = std::exp(d.uniform(log_lo, log_hi));
        const auto eh = static_cast<std::int64_t>(std::nearbyint(std::sqrt(target * ratio)));
        const auto ew = static_cast<std::int64_t>(std::nearbyint(std::sqrt(target / ratio)));
        if (eh >= 1 && ew >= 1 && eh < h && ew < w) {
          const std::int64_t y0 = d.randint(0, h - eh), x0 = d.randint(0, w - ew);
          add_rect(x0, y0, x0 + ew, y0 + eh);
          break;
        }
      }
    }
    if (ss.rect_count == 0) ss.mode = 0;
  }
}

void check_sigma(const char* op, double sigma) {
  if (!(sigma >= 0.0 && sigma <= kMaxSigma)) fail(op, "sigma must be in [0, 1e6], got " + num(sigma));
}

void check_float_tensor(const char* op, const char* name, const Tensor& t) {
  detail::check_defined(op, name, t);
  detail::check_dtype(op, name, t, {DType::float32});
}

}  // namespace

// The Gaussian exp(-t^2 / 2), t >= 0, as sum_k Re(a_k exp(lambda_k t)) over three pairs of
// complex-conjugate poles: a minimax fit on [0, 10] made for this library (Lawson's reweighting
// of least-squares fits, the residues a_k solved linearly for given poles). Largest error
// 3.3e-6 of the peak, so the filter is within about 1e-5 of the sampled Gaussian's peak.
constexpr double kPoleRe[kSmoothSections] = {-2.15597943372383, -2.121721420246472, -2.043488378832813};
constexpr double kPoleIm[kSmoothSections] = {0.5241488416211308, 1.609593522419254, 2.848673005067519};
constexpr double kResidueRe[kSmoothSections] = {3.088962978929219, -2.2340378747858054, 0.14507164938403855};
constexpr double kResidueIm[kSmoothSections] = {-6.824475763481561, 0.7415792176846248, 0.05861594476786955};

SmoothCoef smooth_coef(double sigma) {
  SmoothCoef c{};
  if (sigma <= 0.0) return c;
  if (sigma <= kDirectMaxSigma) {
    c.mode = kSmoothDirect;
    c.radius = static_cast<std::int32_t>(std::ceil(4.5 * sigma));
    double g[kMaxRadius + 1], total = 0.0;
    for (int k = 0; k <= c.radius; ++k) {
      g[k] = std::exp(-0.5 * (k / sigma) * (k / sigma));
      total += k == 0 ? g[k] : 2.0 * g[k];
    }
    for (int k = 0; k <= c.radius; ++k) c.g[k] = static_cast<float>(g[k] / total);
    return c;
  }
  // Sampled at t = n / sigma, pole pair k is p = exp(lambda_k / sigma) and the kernel
  // h[n] = sum_k Re(a_k p_k^|n|): the causal sections take n >= 0, the anticausal n >= 1.
  // In real form the section of (a, p) has d1 = 2 Re p, d2 = -|p|^2, c0 = Re a,
  // c1 = -Re(a conj(p)), e0 = Re(a p), e1 = -|p|^2 Re a.
  c.mode = sigma < kDoubleMinSigma ? kSmoothFloat : kSmoothDouble;
  const bool single = c.mode == kSmoothFloat;
  auto as_stored = [single](double v) { return single ? static_cast<double>(static_cast<float>(v)) : v; };
  for (int k = 0; k < kSmoothSections; ++k) {
    const std::complex<double> a(kResidueRe[k], kResidueIm[k]);
    const std::complex<double> p = std::exp(std::complex<double>(kPoleRe[k], kPoleIm[k]) / sigma);
    SmoothSection& s = c.s[k];
    s.d1 = as_stored(2.0 * p.real());
    s.d2 = as_stored(-std::norm(p));
    s.c0 = a.real();
    s.c1 = -(a * std::conj(p)).real();
    s.e0 = (a * p).real();
    s.e1 = -std::norm(p) * a.real();
  }
  // Scale the numerators so that the filter as stored (its rounded denominators included)
  // has DC gain 1: constant lines stay constant.
  for (int pass = 0; pass < 2; ++pass) {
    double gain = 0.0;
    for (const SmoothSection& s : c.s) gain += (s.c0 + s.c1 + s.e0 + s.e1) / ((1.0 - s.d1) - s.d2);
    for (SmoothSection& s : c.s) {
      s.c0 = as_stored(s.c0 / gain), s.c1 = as_stored(s.c1 / gain);
      s.e0 = as_stored(s.e0 / gain), s.e1 = as_stored(s.e1 / gain);
    }
  }
  for (SmoothSection& s : c.s) {
    const double den = (1.0 - s.d1) - s.d2;
    s.gc = as_stored((s.c0 + s.c1) / den);
    s.ga = as_stored((s.e0 + s.e1) / den);
  }
  return c;
}

Shape augment_output_shape(const Shape& x_shape, const std::vector<AugmentStep>& steps, ImageLayout layout) {
  check_image_shape(kOp, "x", x_shape, layout);
  Dims d = dims_of(x_shape, layout);
  std::vector<std::vector<std::size_t>> members;
  const std::vector<StagePlan> stages = make_stages(steps, d, layout, DType::float32, &members);
  if (!stages.empty()) d.h = stages.back().out.h, d.w = stages.back().out.w;
  return shape_of(d, layout);
}

void augment(const Tensor& x, const Tensor& out, const std::vector<AugmentStep>& steps, ImageLayout layout,
             std::uint64_t seed, std::uint64_t sample_offset, const Tensor& labels) {
  detail::check_defined(kOp, "x", x);
  detail::check_defined(kOp, "out", out);
  detail::check_dtype(kOp, "x", x, {DType::uint8, DType::float32});
  detail::check_same_dtype(kOp, "x", x, "out", out);
  detail::check_same_device(kOp, "x", x, "out", out);
  detail::check_no_overlap(kOp, "out", out, "x", x);
  check_image_shape(kOp, "x", x.shape(), layout);
  const Dims d = dims_of(x.shape(), layout);
  AugmentPlan plan;
  std::vector<std::vector<std::size_t>> members;
  plan.stages = make_stages(steps, d, layout, x.dtype(), &members);
  Dims od = d;
  if (!plan.stages.empty()) od.h = plan.stages.back().out.h, od.w = plan.stages.back().out.w;
  detail::check_shape(kOp, "out", out, shape_of(od, layout));
  std::vector<std::int64_t> label_values;
  if (labels.defined()) {
    detail::check_dtype(kOp, "labels", labels, {DType::int64, DType::int32});
    if (labels.is_cuda()) fail(kOp, "labels must be on the CPU, got " + labels.describe());
    if (labels.dim() != 1 || labels.size(0) != d.n)
      fail(kOp, "labels must have shape (" + std::to_string(d.n) + "), got " + shape_str(labels.shape()));
    label_values.resize(static_cast<std::size_t>(d.n));
    for (std::int64_t i = 0; i < d.n; ++i)
      label_values[static_cast<std::size_t>(i)] =
          labels.dtype() == DType::int64 ? labels.data_as<std::int64_t>()[i] : labels.data_as<std::int32_t>()[i];
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
    plan_sample(steps, plan.stages, members, seed, sample_offset + static_cast<std::uint64_t>(i),
                label_values.empty() ? nullptr : &label_values[static_cast<std::size_t>(i)],
                plan.samples.data() + static_cast<std::size_t>(i) * ns, &plan.rects);
  SEISOKU_DISPATCH(x, augment, x, out, plan);
}

void gaussian_smooth(const Tensor& x, const Tensor& out, double sigma) {
  const char* op = "gaussian_smooth";
  check_float_tensor(op, "x", x);
  check_float_tensor(op, "out", out);
  if (x.dim() != 3) fail(op, "x must be 3-D (N, H, W), got shape " + shape_str(x.shape()));
  detail::check_same_shape(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
  detail::check_no_overlap(op, "out", out, "x", x);
  check_sigma(op, sigma);
  if (x.numel() == 0) return;
  SEISOKU_DISPATCH(x, gaussian_smooth, x, out, smooth_coef(sigma));
}

void elastic_displacement(const Tensor& out, double alpha, double sigma, std::uint64_t seed,
                          std::uint64_t sample_offset, std::int64_t step_index) {
  const char* op = "elastic_displacement";
  check_float_tensor(op, "out", out);
  if (out.dim() != 4 || out.size(1) != 2) fail(op, "out must have shape (N, 2, H, W), got " + shape_str(out.shape()));
  if (!std::isfinite(alpha)) fail(op, "alpha must be finite, got " + num(alpha));
  check_sigma(op, sigma);
  if (step_index < 0 || step_index >= (std::int64_t{1} << 15))
    fail(op, "step_index must be in [0, 32768), got " + std::to_string(step_index));
  if (out.numel() == 0) return;
  SEISOKU_DISPATCH(out, elastic_displacement, out, static_cast<float>(alpha), smooth_coef(sigma), seed, sample_offset,
                   step_index);
}

void displace(const Tensor& x, const Tensor& disp, const Tensor& out, ImageLayout layout, Interp interp, Border border,
              double fill) {
  const char* op = "displace";
  detail::check_defined(op, "x", x);
  detail::check_dtype(op, "x", x, {DType::uint8, DType::float32});
  check_float_tensor(op, "disp", disp);
  detail::check_defined(op, "out", out);
  check_image_shape(op, "x", x.shape(), layout);
  detail::check_same_dtype(op, "x", x, "out", out);
  detail::check_same_shape(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "disp", disp);
  detail::check_no_overlap(op, "out", out, "x", x);
  detail::check_no_overlap(op, "out", out, "disp", disp);
  const Dims d = dims_of(x.shape(), layout);
  detail::check_shape(op, "disp", disp, {d.n, 2, d.h, d.w});
  if (!std::isfinite(fill)) fail(op, "fill must be finite, got " + num(fill));
  if (d.n == 0) return;
  SEISOKU_DISPATCH(x, displace, x, disp, out, image_shape(d.h, d.w, d.c, layout), interp, border,
                   stored_fill(fill, x.dtype()));
}

}  // namespace seisoku
