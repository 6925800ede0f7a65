#pragma once
// Batch image augmentation: a pipeline of transforms applied to a whole batch in one call,
// with random parameters drawn per sample from Philox keyed by (seed, sample index +
// sample_offset, transform index), so that a sample's result never depends on the batch it
// came in, the thread count or the device (CPU and CUDA give the same bits).
//
// Images are uint8 or float32, NHWC or NCHW, any channel count and size; the output has the
// input's dtype and layout (uint8 results are rounded to nearest and saturated, float32
// values are never clamped). Coordinates are in pixels with pixel centres at integers;
// angles are in degrees, counter-clockwise as the image is displayed (row 0 at the top).
//
// Consecutive geometric transforms (flips, RandomCrop, RandomResizedCrop, RandomRotation)
// are folded into one resampling of the image when that is exact: flips fold into anything,
// and a group holds at most one transform that can reach outside its input (a crop with
// padding, a resized crop, a rotation), so the border is always the one of that transform.
// Transforms that are not applied to a sample (probability p, or its label in skip_labels)
// leave it unchanged and do not change the draws of the other transforms.
//
// Label-aware transforms: a step's label_map sends a label either to aug::kSkip (the step is
// never applied to samples of that label, as skip_labels) or to another label (the step is
// applied as usual, and a sample it is applied to takes the new label, e.g. a horizontal flip
// turning "b" into "d"). The steps see the labels in order, each the label the previous steps
// left; augment() returns the final labels in labels_out. Unlabeled samples (label -1) are
// never in a map: every step applies to them as to a sample of an unlisted label.
//
// Every factory of seisoku::aug checks its arguments and throws std::invalid_argument
// "[Transform] argument 'name' must be ..., got ..." (Transform: the name of the seisoku.augment
// class, the argument: its Python name); augment() checks hand-built steps the same way.
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "seisoku/tensor.hpp"

namespace seisoku {

enum class ImageLayout : std::uint8_t { nhwc, nchw };
enum class Interpolation : std::uint8_t { nearest, bilinear, bicubic };  // bicubic: Keys, a = -0.5
// Where a resampling reads outside the image: a constant fill value, the mirror image about
// the edge pixel (NumPy's pad mode "reflect": d c b | a b c d | c b a) or the edge pixel.
enum class Border : std::uint8_t { constant, reflect, edge };

enum class AugmentOp : std::uint8_t {
  horizontal_flip,
  vertical_flip,
  random_crop,
  random_resized_crop,
  random_rotation,
  cutout,
  random_erasing,
  elastic_distortion,
  gaussian_noise,
};

// One transform of a pipeline. Build it with the factories in seisoku::aug below; fields
// that an op does not use are ignored. (The standard deviation is the member `std`, so the
// struct spells the namespace ::std.)
struct AugmentStep {
  AugmentOp op = AugmentOp::horizontal_flip;
  double p = 1.0;                               // probability of applying it to a sample, in [0, 1]
  ::std::int64_t height = 0;                    // crop / resized crop: output size; cutout: mask side
  ::std::int64_t width = 0;
  ::std::int64_t padding = 0;                   // random_crop: pixels added on every side before cropping
  ::std::int64_t count = 1;                     // cutout: number of masks
  double scale_lo = 0.0, scale_hi = 0.0;        // resized crop, erasing: area fraction
  double ratio_lo = 1.0, ratio_hi = 1.0;        // resized crop: width / height; erasing: height / width
  double degrees_lo = 0.0, degrees_hi = 0.0;    // rotation: angle range in degrees
  double alpha = 0.0;                           // elastic: displacement scale in pixels
  double sigma = 0.0;                           // elastic: Gaussian smoothing in pixels, in [0, 1e6]
  double std = 0.0;                             // gaussian_noise: standard deviation in pixel value units
  Interpolation interpolation = Interpolation::nearest;
  Border border = Border::constant;
  double fill = 0.0;                            // constant border / cutout / erasing value
  bool random_fill = false;                     // erasing: per-pixel random values instead of `fill`
  ::std::vector<::std::int64_t> skip_labels;    // never applied to samples with these labels
  // (label, new label or aug::kSkip) pairs, labels >= 0, each label at most once and not in
  // skip_labels: see "Label-aware transforms" above.
  ::std::vector<::std::pair<::std::int64_t, ::std::int64_t>> label_map;
};

namespace aug {
using Labels = std::vector<std::int64_t>;
using LabelMap = std::vector<std::pair<std::int64_t, std::int64_t>>;
// The new label of a label_map entry that means "never apply the step to this label".
inline constexpr std::int64_t kSkip = std::numeric_limits<std::int64_t>::min();
SEISOKU_API AugmentStep horizontal_flip(double p = 0.5, Labels skip_labels = {});
SEISOKU_API AugmentStep vertical_flip(double p = 0.5, Labels skip_labels = {});
// Pads by `padding` on every side (border), then crops height x width at a random offset.
SEISOKU_API AugmentStep random_crop(std::int64_t height, std::int64_t width, std::int64_t padding = 0,
                                    Border border = Border::constant, double fill = 0.0, double p = 1.0,
                                    Labels skip_labels = {});
// A random box of area fraction [scale_lo, scale_hi] and aspect ratio [ratio_lo, ratio_hi]
// (log-uniform), resized to height x width; 10 tries, then a centre crop.
SEISOKU_API AugmentStep random_resized_crop(std::int64_t height, std::int64_t width, double scale_lo = 0.08,
                                            double scale_hi = 1.0, double ratio_lo = 3.0 / 4.0,
                                            double ratio_hi = 4.0 / 3.0,
                                            Interpolation interpolation = Interpolation::bilinear, double p = 1.0,
                                            Labels skip_labels = {});
// Rotation about the image centre by an angle uniform in [degrees_lo, degrees_hi].
SEISOKU_API AugmentStep random_rotation(double degrees_lo, double degrees_hi,
                                        Interpolation interpolation = Interpolation::bilinear,
                                        Border border = Border::constant, double fill = 0.0, double p = 1.0,
                                        Labels skip_labels = {});
// `count` square masks of side `size` centred at uniform pixels (clipped at the border).
SEISOKU_API AugmentStep cutout(std::int64_t count, std::int64_t size, double fill = 0.0, double p = 1.0,
                               Labels skip_labels = {});
// One box of area fraction [scale_lo, scale_hi] and aspect ratio (h / w) in [ratio_lo,
// ratio_hi] filled with `fill` or, with random_fill, per-pixel N(0, 1) (float32) or uniform
// 0..255 (uint8); 10 tries, then nothing.
SEISOKU_API AugmentStep random_erasing(double scale_lo = 0.02, double scale_hi = 0.33, double ratio_lo = 0.3,
                                       double ratio_hi = 3.3, double fill = 0.0, bool random_fill = false,
                                       double p = 0.5, Labels skip_labels = {});
// Simard et al. 2003: uniform [-1, 1] displacement fields smoothed by a Gaussian of `sigma`
// pixels (gaussian_smooth) and scaled by `alpha` pixels.
SEISOKU_API AugmentStep elastic_distortion(double alpha, double sigma,
                                           Interpolation interpolation = Interpolation::bilinear,
                                           Border border = Border::constant, double fill = 0.0, double p = 1.0,
                                           Labels skip_labels = {});
// Adds N(0, std^2) to every value (uint8: rounded and saturated).
SEISOKU_API AugmentStep gaussian_noise(double std, double p = 1.0, Labels skip_labels = {});
// `step` with its label_map set to `label_map`, checked (label_map's entries: see AugmentStep).
SEISOKU_API AugmentStep with_label_map(AugmentStep step, LabelMap label_map);
// The label a sample of `label` has after `step` when the step is applied to it, or kSkip when
// the step never applies to it (skip_labels or a kSkip entry); -1 (unlabeled) stays -1.
SEISOKU_API std::int64_t mapped_label(const AugmentStep& step, std::int64_t label);
// Throws std::invalid_argument "[Transform] argument ..." unless every field of `step` that
// its op uses is in range (the factories call it on the steps they build).
SEISOKU_API void check_step(const AugmentStep& step);
// The seisoku.augment class name of an op ("RandomRotation", ...).
SEISOKU_API const char* transform_name(AugmentOp op);
}  // namespace aug

// Shape of augment's output for an input of shape x_shape (crops change H and W). Throws
// std::invalid_argument for a bad pipeline or shape.
SEISOKU_API Shape augment_output_shape(const Shape& x_shape, const std::vector<AugmentStep>& steps,
                                       ImageLayout layout);

// out = the pipeline applied to every sample of x (N, H, W, C) or (N, C, H, W). Sample i draws
// its parameters with sample index i + sample_offset. labels (optional, int32 or int64 (N),
// on the CPU) selects the samples that each step's skip_labels and label_map exempt or
// relabel; labels_out (optional, int64 (N), on the CPU, needs labels) receives the labels
// after the pipeline.
SEISOKU_API void augment(const Tensor& x, const Tensor& out, const std::vector<AugmentStep>& steps,
                         ImageLayout layout, std::uint64_t seed, std::uint64_t sample_offset = 0,
                         const Tensor& labels = Tensor(), const Tensor& labels_out = Tensor());

// out (N, H, W) = x (N, H, W) float32 smoothed along W, then H, by the sampled Gaussian
// exp(-k^2 / (2 sigma^2)) / Z, the values past each edge taken equal to the edge value
// (scipy.ndimage.gaussian_filter with mode "nearest"), to 1e-3 of the result's largest value
// (measured: 7e-5) for every sigma in [0, 1e6] pixels: sigma <= 4/3 the sampled kernel of
// radius ceil(4.5 sigma); above, a sum of three causal and three anticausal second-order
// recursive sections (a minimax fit of the Gaussian, 3.3e-6 of its peak) started from the
// steady state of the extended edge, so the cost does not grow with sigma (float arithmetic
// below sigma 64, double above); sigma = 0 a copy.
SEISOKU_API void gaussian_smooth(const Tensor& x, const Tensor& out, double sigma);

// out (N, 2, H, W) float32 = the displacement fields (dx, dy) in pixels that
// elastic_distortion(alpha, sigma) at position `step_index` of a pipeline draws for samples
// sample_offset .. sample_offset + N - 1 under `seed`.
SEISOKU_API void elastic_displacement(const Tensor& out, double alpha, double sigma, std::uint64_t seed,
                                      std::uint64_t sample_offset, std::int64_t step_index);

// out(y, x) = x sampled at (x + disp[0](y, x), y + disp[1](y, x)) with interpolation and border;
// disp (N, 2, H, W) float32, out like x.
SEISOKU_API void displace(const Tensor& x, const Tensor& disp, const Tensor& out, ImageLayout layout,
                          Interpolation interpolation, Border border, double fill);

}  // namespace seisoku
