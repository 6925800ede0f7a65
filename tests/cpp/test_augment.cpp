// The C++ augmentation API: flips and crops against plain loops, identities, reproducibility
// by seed and sample offset, and argument errors.
#include <gtest/gtest.h>
#include <seisoku/seisoku.hpp>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using seisoku::AugmentStep;
using seisoku::DType;
using seisoku::ImageLayout;
using seisoku::Tensor;
namespace aug = seisoku::aug;

// A uint8 NHWC batch with distinct-ish values.
Tensor batch(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c) {
  Tensor t = Tensor::empty({n, h, w, c}, DType::uint8);
  auto* p = t.data_as<std::uint8_t>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<std::uint8_t>((i * 37 + 11) % 251);
  return t;
}

std::uint8_t at(const Tensor& t, std::int64_t n, std::int64_t y, std::int64_t x, std::int64_t c) {
  const auto& s = t.shape();
  return t.data_as<std::uint8_t>()[((n * s[1] + y) * s[2] + x) * s[3] + c];
}

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

TEST(Augment, FlipsMirrorTheImage) {
  const Tensor x = batch(3, 5, 7, 3);
  Tensor out = Tensor::empty(x.shape(), DType::uint8);
  seisoku::augment(x, out, {aug::horizontal_flip(1.0), aug::vertical_flip(1.0)}, ImageLayout::nhwc, 0);
  for (std::int64_t n = 0; n < 3; ++n)
    for (std::int64_t y = 0; y < 5; ++y)
      for (std::int64_t xx = 0; xx < 7; ++xx)
        for (std::int64_t c = 0; c < 3; ++c) ASSERT_EQ(at(out, n, y, xx, c), at(x, n, 4 - y, 6 - xx, c));
}

TEST(Augment, CropIsASliceAndRotationByZeroIsTheIdentity) {
  const Tensor x = batch(4, 9, 8, 1);
  const std::vector<AugmentStep> steps = {aug::random_crop(6, 5)};
  EXPECT_EQ(seisoku::augment_output_shape(x.shape(), steps, ImageLayout::nhwc), (seisoku::Shape{4, 6, 5, 1}));
  Tensor out = Tensor::empty({4, 6, 5, 1}, DType::uint8);
  seisoku::augment(x, out, steps, ImageLayout::nhwc, 7);
  for (std::int64_t n = 0; n < 4; ++n) {
    bool found = false;
    for (std::int64_t oy = 0; oy <= 3 && !found; ++oy)
      for (std::int64_t ox = 0; ox <= 3 && !found; ++ox) {
        bool all = true;
        for (std::int64_t y = 0; y < 6; ++y)
          for (std::int64_t xx = 0; xx < 5; ++xx) all = all && at(out, n, y, xx, 0) == at(x, n, y + oy, xx + ox, 0);
        found = all;
      }
    EXPECT_TRUE(found) << "sample " << n;
  }
  Tensor same_out = Tensor::empty(x.shape(), DType::uint8);
  seisoku::augment(x, same_out, {aug::random_rotation(0.0, 0.0, seisoku::Interpolation::bicubic)}, ImageLayout::nhwc, 1);
  EXPECT_TRUE(same(same_out, x));
}

TEST(Augment, SeedAndSampleOffsetMakeItReproducible) {
  const Tensor x = batch(6, 12, 12, 1);
  const std::vector<AugmentStep> steps = {aug::random_rotation(-20, 20), aug::elastic_distortion(4.0, 3.0),
                                          aug::gaussian_noise(5.0)};
  Tensor a = Tensor::empty(x.shape(), DType::uint8), b = Tensor::empty(x.shape(), DType::uint8);
  seisoku::augment(x, a, steps, ImageLayout::nhwc, 42);
  seisoku::augment(x, b, steps, ImageLayout::nhwc, 42);
  EXPECT_TRUE(same(a, b));
  // Samples 2..5 alone, with sample_offset 2, are the same images.
  Tensor tail = Tensor::view(static_cast<std::uint8_t*>(x.data()) + 2 * 144, {4, 12, 12, 1}, DType::uint8);
  Tensor c = Tensor::empty({4, 12, 12, 1}, DType::uint8);
  seisoku::augment(tail, c, steps, ImageLayout::nhwc, 42, 2);
  EXPECT_EQ(std::memcmp(c.data(), static_cast<std::uint8_t*>(a.data()) + 2 * 144, c.nbytes()), 0);
  seisoku::augment(x, b, steps, ImageLayout::nhwc, 43);
  EXPECT_FALSE(same(a, b));
}

TEST(Augment, BadArgumentsThrowInvalidArgument) {
  const Tensor x = batch(2, 8, 8, 1);
  Tensor out = Tensor::empty(x.shape(), DType::uint8);
  // The factories check their arguments, naming the transform and the argument.
  try {
    aug::horizontal_flip(1.5);
    FAIL() << "p = 1.5 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[HorizontalFlip] argument 'p' must be in [0, 1], got 1.5"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(aug::elastic_distortion(1.0, -2.0), std::invalid_argument);
  EXPECT_THROW(aug::random_rotation(10.0, -10.0), std::invalid_argument);
  EXPECT_THROW(aug::gaussian_noise(-1.0), std::invalid_argument);
  EXPECT_THROW(aug::random_erasing(0.5, 0.1), std::invalid_argument);
  // augment checks hand-built steps the same way, and the crop against the image.
  AugmentStep bad = aug::gaussian_noise(1.0);
  bad.std = -3.0;
  try {
    seisoku::augment(x, out, {aug::horizontal_flip(), bad}, ImageLayout::nhwc, 0);
    FAIL() << "std = -3 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[GaussianNoise] argument 'std' must be finite and >= 0, got -3 (steps[1]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(seisoku::augment(x, out, {aug::random_crop(12, 12, 1)}, ImageLayout::nhwc, 0), std::invalid_argument);
  Tensor wrong = Tensor::empty({2, 8, 8}, DType::uint8);
  EXPECT_THROW(seisoku::augment(wrong, wrong, {}, ImageLayout::nhwc, 0), std::invalid_argument);
}

TEST(Augment, GaussianSmoothKeepsAConstantAndMatchesTheEdgeImpulse) {
  // An impulse at the end of a 16-pixel line, sigma 4: 0.5499 at the impulse (the sampled
  // Gaussian with the edge value extended: half the mass beyond the edge plus g(0) / 2).
  Tensor x = Tensor::empty({1, 1, 16}, DType::float32), out = Tensor::empty({1, 1, 16}, DType::float32);
  float* px = x.data_as<float>();
  for (int i = 0; i < 16; ++i) px[i] = i == 15 ? 1.0f : 0.0f;
  seisoku::gaussian_smooth(x, out, 4.0);
  EXPECT_NEAR(out.data_as<float>()[15], 0.5499, 1e-3);
  for (int i = 0; i < 16; ++i) px[i] = 2.5f;
  seisoku::gaussian_smooth(x, out, 100.0);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(out.data_as<float>()[i], 2.5f, 1e-5f);
  EXPECT_THROW(seisoku::gaussian_smooth(x, out, 2e6), std::invalid_argument);
}

}  // namespace

TEST(Augment, LabelMapSkipsOrRelabelsAndReturnsTheLabels) {
  const Tensor x = batch(4, 3, 5, 1);
  Tensor out = Tensor::empty(x.shape(), DType::uint8);
  Tensor labels = Tensor::empty({4}, DType::int64), labels_out = Tensor::empty({4}, DType::int64);
  const std::int64_t in[4] = {0, 1, 2, -1};
  std::memcpy(labels.data(), in, sizeof in);
  const AugmentStep flip = aug::with_label_map(aug::horizontal_flip(1.0), {{1, 2}, {2, aug::kSkip}});
  EXPECT_EQ(aug::mapped_label(flip, 1), 2);
  EXPECT_EQ(aug::mapped_label(flip, 2), aug::kSkip);
  EXPECT_EQ(aug::mapped_label(flip, -1), -1);
  seisoku::augment(x, out, {flip}, ImageLayout::nhwc, 0, 0, labels, labels_out);
  const auto* got = labels_out.data_as<std::int64_t>();
  EXPECT_EQ(got[0], 0);
  EXPECT_EQ(got[1], 2);
  EXPECT_EQ(got[2], 2);
  EXPECT_EQ(got[3], -1);
  for (std::int64_t y = 0; y < 3; ++y)
    for (std::int64_t xx = 0; xx < 5; ++xx) {
      EXPECT_EQ(at(out, 1, y, xx, 0), at(x, 1, y, 4 - xx, 0));  // relabelled: flipped
      EXPECT_EQ(at(out, 2, y, xx, 0), at(x, 2, y, xx, 0));      // skipped: unchanged
      EXPECT_EQ(at(out, 3, y, xx, 0), at(x, 3, y, 4 - xx, 0));  // unlabeled: flipped
    }
  EXPECT_THROW(aug::with_label_map(aug::vertical_flip(), {{-1, 0}}), std::invalid_argument);
  EXPECT_THROW(aug::with_label_map(aug::vertical_flip(), {{1, 0}, {1, 2}}), std::invalid_argument);
  EXPECT_THROW(seisoku::augment(x, out, {flip}, ImageLayout::nhwc, 0, 0, Tensor(), labels_out), std::invalid_argument);
}
