// The augmentation planner: the stages of a pipeline (one resampling per group of geometric
// steps, one per elastic step, one in-place pass per cutout / erasing / noise step), the
// buffers they read and write, and every sample's random parameters, drawn from Philox keyed
// by (seed, sample index + sample_offset) at blocks step << 48 + j (kernels/augment.hpp).
// Also the coefficients of the Gaussian smoothing.
#include "augment_plan.hpp"

#include <algorithm>
#include <cmath>
#include <complex>
#include <stdexcept>
#include <string>

namespace seisoku {
namespace plan {
namespace {

bool is_geometric(AugmentOp op) {
  return op == AugmentOp::horizontal_flip || op == AugmentOp::vertical_flip || op == AugmentOp::random_crop ||
         op == AugmentOp::random_resized_crop || op == AugmentOp::random_rotation;
}

// A transform that can read outside its input (and so brings a border).
bool is_bordered(AugmentOp op) { return is_geometric(op) && op != AugmentOp::horizontal_flip && op != AugmentOp::vertical_flip; }

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
    const double target = area * d.uniform(s.scale_lo, s.scale_hi);
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
      const double deg = d.uniform(s.degrees_lo, s.degrees_hi);
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

// Whether step s applies to the sample, given its draw u (always taken, so that skipping never
// shifts a draw) and its label (null: none), which it updates by the step's label_map.
bool applies(const AugmentStep& s, double u, std::int64_t* label) {
  if (!(u < s.p)) return false;
  if (label == nullptr) return true;
  const std::int64_t to = aug::mapped_label(s, *label);
  if (to == aug::kSkip) return false;
  *label = to;
  return true;
}

}  // namespace

Dims dims_of(const Shape& s, ImageLayout layout) {
  return layout == ImageLayout::nchw ? Dims{s[0], s[2], s[3], s[1]} : Dims{s[0], s[1], s[2], s[3]};
}

Shape shape_of(const Dims& d, ImageLayout layout) {
  return layout == ImageLayout::nchw ? Shape{d.n, d.c, d.h, d.w} : Shape{d.n, d.h, d.w, d.c};
}

float stored_fill(double fill, DType dtype) {
  if (dtype == DType::uint8) return static_cast<float>(std::floor(std::clamp(fill, 0.0, 255.0) + 0.5));
  return static_cast<float>(fill);
}

std::vector<StagePlan> make_stages(const std::vector<AugmentStep>& steps, const Dims& d, ImageLayout layout,
                                   DType dtype, std::vector<std::vector<std::size_t>>* members) {
  std::vector<StagePlan> stages;
  members->clear();
  std::int64_t h = d.h, w = d.w;
  bool open_geo = false, geo_bordered = false;
  for (std::size_t k = 0; k < steps.size(); ++k) {
    const AugmentStep& s = steps[k];
    if (s.op == AugmentOp::random_crop && (s.height > h + 2 * s.padding || s.width > w + 2 * s.padding))
      throw std::invalid_argument("[RandomCrop] argument 'size' must fit the padded image " + std::to_string(h + 2 * s.padding) +
                                  "x" + std::to_string(w + 2 * s.padding) + " (" + std::to_string(h) + "x" +
                                  std::to_string(w) + " with padding " + std::to_string(s.padding) + ") that step " +
                                  std::to_string(k) + " receives, got " + std::to_string(s.height) + "x" +
                                  std::to_string(s.width));
    StagePlan st{};
    st.step = static_cast<std::int32_t>(k);
    st.in = image_shape(h, w, d.c, layout);
    st.fill = stored_fill(s.fill, dtype);
    st.interpolation = s.interpolation;
    st.border = s.border;
    if (is_geometric(s.op)) {
      if (!open_geo || (geo_bordered && is_bordered(s.op))) {
        st.kind = StageKind::geometric;
        st.interpolation = Interpolation::nearest;
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
        g.interpolation = s.op == AugmentOp::random_crop ? Interpolation::nearest : s.interpolation;
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
        st.std = static_cast<float>(s.std);
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

void plan_sample(const std::vector<AugmentStep>& steps, const std::vector<StagePlan>& stages,
                 const std::vector<std::vector<std::size_t>>& members, std::uint64_t seed, std::uint64_t offset,
                 std::int64_t* label, SampleStage* out, std::vector<std::int32_t>* rects) {
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
        const bool applied = applies(s, d.uniform(), label);
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
    const bool applied = applies(s, d.uniform(), label);
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
        const double target = area * d.uniform(s.scale_lo, s.scale_hi);
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

}  // namespace plan

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

}  // namespace seisoku
