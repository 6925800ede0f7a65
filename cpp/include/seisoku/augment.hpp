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
#include <cstdint>
#include <vector>

#include "seisoku/tensor.hpp"

namespace seisoku {

enum class ImageLayout : std::uint8_t { nhwc, nchw };
enum class Interp : std::uint8_t { nearest, bilinear, bicubic };  // bicubic: Keys, a = -0.5
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
// that an op does not use are ignored.
struct AugmentStep {
  AugmentOp op = AugmentOp::horizontal_flip;
  double p = 1.0;                 // probability of applying it to a sample, in [0, 1]
  std::int64_t height = 0;        // crop / resized crop: output size; cutout: mask side
  std::int64_t width = 0;
  std::int64_t padding = 0;       // random_crop: pixels added on every side before cropping
  std::int64_t count = 1;         // cutout: number of masks
  double lo = 0.0, hi = 0.0;      // resized crop, erasing: area fraction; rotation: degrees
  double ratio_lo = 1.0, ratio_hi = 1.0;  // resized crop, erasing: aspect ratio w / h range
  double alpha = 0.0;             // elastic: displacement scale in pixels
  double sigma = 0.0;             // elastic: Gaussian smoothing in pixels (>= 0)
  double stddev = 0.0;            // gaussian_noise: in pixel value units
  Interp interp = Interp::nearest;
  Border border = Border::constant;
  double fill = 0.0;              // constant border / cutout / erasing value
  bool random_fill = false;       // erasing: per-pixel random values instead of `fill`
  std::vector<std::int64_t> skip_labels;  // never applied to samples with these labels
};

namespace aug {
SEISOKU_API AugmentStep horizontal_flip(double p = 0.5);
SEISOKU_API AugmentStep vertical_flip(double p = 0.5);
// Pads by `padding` on every side (border), then crops height x width at a random offset.
SEISOKU_API AugmentStep random_crop(std::int64_t height, std::int64_t width, std::int64_t padding = 0,
                                    Border border = Border::constant, double fill = 0.0, double p = 1.0);
// A random box of area fraction [scale_lo, scale_hi] and aspect ratio [ratio_lo, ratio_hi]
// (log-uniform), resized to height x width; 10 tries, then a centre crop.
SEISOKU_API AugmentStep random_resized_crop(std::int64_t height, std::int64_t width, double scale_lo = 0.08,
                                            double scale_hi = 1.0, double ratio_lo = 3.0 / 4.0,
                                            double ratio_hi = 4.0 / 3.0, Interp interp = Interp::bilinear,
                                            double p = 1.0);
// Rotation about the image centre by an angle uniform in [deg_lo, deg_hi] degrees.
SEISOKU_API AugmentStep random_rotation(double deg_lo, double deg_hi, Interp interp = Interp::bilinear,
                                        Border border = Border::constant, double fill = 0.0, double p = 1.0);
// `count` square masks of side `size` centred at uniform pixels (clipped at the border).
SEISOKU_API AugmentStep cutout(std::int64_t count, std::int64_t size, double fill = 0.0, double p = 1.0);
// One box of area fraction [scale_lo, scale_hi] and aspect ratio (h / w) in [ratio_lo,
// ratio_hi] filled with `fill` or, with random_fill, per-pixel N(0, 1) (float32) or uniform
// 0..255 (uint8); 10 tries, then nothing.
SEISOKU_API AugmentStep random_erasing(double p = 0.5, double scale_lo = 0.02, double scale_hi = 0.33,
                                       double ratio_lo = 0.3, double ratio_hi = 3.3, double fill = 0.0,
                                       bool random_fill = false);
// Simard et al. 2003: uniform [-1, 1] displacement fields smoothed by a Gaussian of `sigma`
// pixels (see gaussian_smooth: cost bounded for every sigma) and scaled by `alpha` pixels.
SEISOKU_API AugmentStep elastic_distortion(double alpha, double sigma, Interp interp = Interp::bilinear,
                                           Border border = Border::constant, double fill = 0.0, double p = 1.0);
// Adds N(0, stddev^2) to every value (uint8: rounded and saturated).
SEISOKU_API AugmentStep gaussian_noise(double stddev, double p = 1.0);
}  // namespace aug

// Shape of augment's output for an input of shape x_shape (crops change H and W). Throws
// std::invalid_argument for a bad pipeline or shape.
SEISOKU_API Shape augment_output_shape(const Shape& x_shape, const std::vector<AugmentStep>& steps,
                                       ImageLayout layout);

// out = the pipeline applied to every sample of x (N, H, W, C) or (N, C, H, W). Sample i draws
// its parameters with sample index i + sample_offset. labels (optional, int32 or int64 (N),
// on the CPU) selects the samples that each step's skip_labels exempts.
SEISOKU_API void augment(const Tensor& x, const Tensor& out, const std::vector<AugmentStep>& steps,
                         ImageLayout layout, std::uint64_t seed, std::uint64_t sample_offset = 0,
                         const Tensor& labels = Tensor());

// out (N, H, W) = x (N, H, W) float32 smoothed along H and W by a Gaussian of sigma pixels,
// the edge values extended: sigma >= 3 the Young-van Vliet third-order recursive filter
// (cost independent of sigma, within about 4% of the Gaussian's peak), 0.5 <= sigma < 3 the
// sampled Gaussian of radius ceil(3 sigma), 0 < sigma < 0.5 the 3-tap filter of variance
// sigma^2, sigma = 0 a copy.
SEISOKU_API void gaussian_smooth(const Tensor& x, const Tensor& out, double sigma);

// out (N, 2, H, W) float32 = the displacement fields (dx, dy) in pixels that
// elastic_distortion(alpha, sigma) at position `step_index` of a pipeline draws for samples
// sample_offset .. sample_offset + N - 1 under `seed`.
SEISOKU_API void elastic_displacement(const Tensor& out, double alpha, double sigma, std::uint64_t seed,
                                      std::uint64_t sample_offset, std::int64_t step_index);

// out(y, x) = x sampled at (x + disp[0](y, x), y + disp[1](y, x)) with interp and border;
// disp (N, 2, H, W) float32, out like x.
SEISOKU_API void displace(const Tensor& x, const Tensor& disp, const Tensor& out, ImageLayout layout, Interp interp,
                          Border border, double fill);

}  // namespace seisoku
