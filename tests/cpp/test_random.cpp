// Philox4x32-10 known answers, the draw layout, distributions and reproducibility.
#include <gtest/gtest.h>
#include <seisoku/philox.hpp>
#include <seisoku/seisoku.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using seisoku::Device;
using seisoku::DType;
using seisoku::Tensor;

using Words = std::array<std::uint32_t, 4>;

// Philox4x32-10 written from the paper (Salmon et al., SC 2011), independent of philox.hpp.
Words ref_philox(Words c, std::uint32_t k0, std::uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c[0];
    const std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * c[2];
    c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k0, static_cast<std::uint32_t>(p1),
         static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k1, static_cast<std::uint32_t>(p0)};
  }
  return c;
}

// Block `block` of the stream (seed, offset), as documented in philox.hpp.
Words ref_block(std::uint64_t seed, std::uint64_t offset, std::uint64_t block) {
  return ref_philox({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                     static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(offset >> 32)},
                    static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
}

Words lib_philox(const Words& c, std::uint32_t k0, std::uint32_t k1) {
  const seisoku::philox::Block out = seisoku::philox::philox4x32_10({{c[0], c[1], c[2], c[3]}}, k0, k1);
  return {out.v[0], out.v[1], out.v[2], out.v[3]};
}

std::vector<double> read(const Tensor& t) {
  std::vector<double> v(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) {
    switch (t.dtype()) {
      case DType::float32: v[i] = t.data_as<float>()[i]; break;
      case DType::float64: v[i] = t.data_as<double>()[i]; break;
      default: v[i] = t.data_as<std::uint8_t>()[i]; break;
    }
  }
  return v;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

struct Moments {
  double mean, var;
};
Moments moments(const std::vector<double>& v) {
  double s = 0, s2 = 0;
  for (double x : v) s += x;
  const double mean = s / static_cast<double>(v.size());
  for (double x : v) s2 += (x - mean) * (x - mean);
  return {mean, s2 / static_cast<double>(v.size() - 1)};
}

class ThreadCount {
 public:
  explicit ThreadCount(int n) : previous_(seisoku::get_num_threads()) { seisoku::set_num_threads(n); }
  ~ThreadCount() { seisoku::set_num_threads(previous_); }

 private:
  int previous_;
};

void expect_invalid(const std::function<void()>& fn, const std::string& tag) {
  try {
    fn();
    ADD_FAILURE() << "expected std::invalid_argument with " << tag;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(tag), std::string::npos) << e.what();
  }
}

constexpr std::int64_t kDraws = 1000000;

// ---- the generator ----

// Random123 kat_vectors: counter words 0..3, key words 0..1, expected words 0..3.
TEST(Philox, KnownAnswers) {
  struct Kat {
    Words ctr;
    std::uint32_t k0, k1;
    Words want;
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, 0, 0, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, 0xffffffff, 0xffffffff,
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0xa4093822, 0x299f31d0,
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& kat : kats) {
    EXPECT_EQ(lib_philox(kat.ctr, kat.k0, kat.k1), kat.want);
    EXPECT_EQ(ref_philox(kat.ctr, kat.k0, kat.k1), kat.want);
  }
}

TEST(Philox, DrawLayout) {
  for (std::uint64_t seed : {std::uint64_t{0}, std::uint64_t{42}, std::uint64_t{0x0123456789abcdefull}}) {
    for (std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{7}, std::uint64_t{0xfedcba9876543210ull}}) {
      for (std::uint64_t block : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{(1ull << 32) + 3}}) {
        const seisoku::philox::Block b = seisoku::philox::draw(seed, offset, block);
        EXPECT_EQ((Words{b.v[0], b.v[1], b.v[2], b.v[3]}), ref_block(seed, offset, block));
      }
    }
  }
}

// uniform with [0, 1) and bernoulli are exact functions of the Philox words.
TEST(RandomBits, UniformAndBernoulliFollowTheLayout) {
  const std::uint64_t seed = 0x0123456789abcdefull, offset = (1ull << 33) + 5;
  const std::int64_t n = 1001;

  const Tensor f32 = Tensor::empty({n}, DType::float32);
  seisoku::uniform(f32, seed, offset);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t w = ref_block(seed, offset, i / 4)[i % 4];
    ASSERT_EQ(f32.data_as<float>()[i], static_cast<float>(std::ldexp(static_cast<double>(w >> 8), -24))) << i;
  }

  const Tensor f64 = Tensor::empty({n}, DType::float64);
  seisoku::uniform(f64, seed, offset);
  for (std::int64_t i = 0; i < n; ++i) {
    const Words w = ref_block(seed, offset, i / 2);
    const std::uint64_t m = (std::uint64_t{w[2 * (i % 2)] >> 5} << 26) | (w[2 * (i % 2) + 1] >> 6);
    ASSERT_EQ(f64.data_as<double>()[i], std::ldexp(static_cast<double>(m), -53)) << i;
  }

  const Tensor u8 = Tensor::empty({n}, DType::uint8);
  seisoku::bernoulli(u8, seed, offset, 0.3);
  const auto threshold = static_cast<std::uint64_t>(0.3 * 4294967296.0);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t w = ref_block(seed, offset, i / 4)[i % 4];
    ASSERT_EQ(u8.data_as<std::uint8_t>()[i], w < threshold ? 1 : 0) << i;
  }
}

// float32 normals (and Gaussian noise) are philox::box_muller of the pairs (word 0, word 1) and
// (word 2, word 3) of each block, bit for bit, whatever vector code computes them.
TEST(RandomBits, NormalFollowsTheScalarBoxMuller) {
  const std::uint64_t seed = 0xfeedfacecafebeefull, offset = 77;
  const std::int64_t n = 1001;
  const double mu = 0.25, sd = 1.5;
  const Tensor z = Tensor::empty({n}, DType::float32);
  seisoku::normal(z, seed, offset, mu, sd);
  const Tensor x = Tensor::empty({n}, DType::float32), noisy = Tensor::empty({n}, DType::float32);
  for (std::int64_t i = 0; i < n; ++i) x.data_as<float>()[i] = 0.01f * static_cast<float>(i % 37) - 0.2f;
  seisoku::gaussian_noise(x, noisy, sd, seed, offset);
  for (std::int64_t i = 0; i < n; i += 2) {
    const Words w = ref_block(seed, offset, i / 4);
    const int k = static_cast<int>(i % 4);
    float n0, n1;
    seisoku::philox::box_muller(seisoku::philox::to_open_unit_float(w[k]), seisoku::philox::to_unit_float(w[k + 1]),
                                &n0, &n1);
    const float v[2] = {n0, n1};
    for (std::int64_t j = i; j < std::min(n, i + 2); ++j) {
      ASSERT_EQ(z.data_as<float>()[j], std::fma(v[j - i], static_cast<float>(sd), static_cast<float>(mu))) << j;
      ASSERT_EQ(noisy.data_as<float>()[j], std::fma(v[j - i], static_cast<float>(sd), x.data_as<float>()[j])) << j;
    }
  }
}

// ---- distributions on 1e6 draws; tolerances are 5 standard errors ----

TEST(Distributions, Uniform) {
  const double n = kDraws;
  for (DType dtype : {DType::float32, DType::float64}) {
    SCOPED_TRACE(seisoku::dtype_name(dtype));
    const Tensor t = Tensor::empty({kDraws}, dtype);
    seisoku::uniform(t, 1234, 0);
    const std::vector<double> v = read(t);
    for (double x : v) ASSERT_TRUE(x >= 0.0 && x < 1.0) << x;
    const Moments m = moments(v);
    EXPECT_NEAR(m.mean, 0.5, 5 * std::sqrt(1.0 / 12 / n));
    EXPECT_NEAR(m.var, 1.0 / 12, 5 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));

    seisoku::uniform(t, 99, 3, -2.0, 3.0);
    const std::vector<double> w = read(t);
    for (double x : w) ASSERT_TRUE(x >= -2.0 && x < 3.0) << x;
    const Moments mw = moments(w);
    EXPECT_NEAR(mw.mean, 0.5, 5 * std::sqrt(25.0 / 12 / n));
    EXPECT_NEAR(mw.var, 25.0 / 12, 5 * 25 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
  }
}

// low + u * (high - low) may round up to high; the draw is clamped below it.
TEST(Distributions, UniformNeverReturnsHigh) {
  const Tensor t = Tensor::empty({100000}, DType::float32);
  seisoku::uniform(t, 0, 0, 1e6, 1e6 + 1);
  for (double x : read(t)) ASSERT_LT(x, 1e6 + 1);
}

TEST(Distributions, Normal) {
  const double n = kDraws, mu = 1.5, sd = 2.0;
  const double p_within1 = 0.6826894921370859, p_beyond3 = 0.0026997960632601866;
  for (DType dtype : {DType::float32, DType::float64}) {
    SCOPED_TRACE(seisoku::dtype_name(dtype));
    const Tensor t = Tensor::empty({kDraws}, dtype);
    seisoku::normal(t, 2024, 1, mu, sd);
    const std::vector<double> v = read(t);
    double within1 = 0, beyond3 = 0;
    for (double x : v) {
      ASSERT_TRUE(std::isfinite(x)) << x;
      const double z = std::fabs(x - mu) / sd;
      within1 += z < 1;
      beyond3 += z > 3;
    }
    const Moments m = moments(v);
    EXPECT_NEAR(m.mean, mu, 5 * sd / std::sqrt(n));
    EXPECT_NEAR(std::sqrt(m.var), sd, 5 * sd / std::sqrt(2 * n));
    EXPECT_NEAR(within1 / n, p_within1, 5 * std::sqrt(p_within1 * (1 - p_within1) / n));
    EXPECT_NEAR(beyond3 / n, p_beyond3, 5 * std::sqrt(p_beyond3 * (1 - p_beyond3) / n));
  }
}

TEST(Distributions, Bernoulli) {
  const double n = kDraws, p = 0.3;
  for (DType dtype : {DType::float32, DType::float64, DType::uint8}) {
    SCOPED_TRACE(seisoku::dtype_name(dtype));
    const Tensor t = Tensor::empty({kDraws}, dtype);
    seisoku::bernoulli(t, 77, 0, p);
    double ones = 0;
    for (double x : read(t)) {
      ASSERT_TRUE(x == 0.0 || x == 1.0) << x;
      ones += x;
    }
    EXPECT_NEAR(ones / n, p, 5 * std::sqrt(p * (1 - p) / n));

    const Tensor small = Tensor::empty({1001}, dtype);
    seisoku::bernoulli(small, 77, 0, 0.0);
    for (double x : read(small)) ASSERT_EQ(x, 0.0);
    seisoku::bernoulli(small, 77, 0, 1.0);
    for (double x : read(small)) ASSERT_EQ(x, 1.0);
  }
}

TEST(Distributions, InvalidArguments) {
  const Tensor f32 = Tensor::empty({8}, DType::float32), i32 = Tensor::empty({8}, DType::int32);
  const double nan = std::nan("");
  expect_invalid([&] { seisoku::uniform(f32, 0, 0, 2.0, 1.0); }, "[uniform]");
  expect_invalid([&] { seisoku::uniform(f32, 0, 0, nan, 1.0); }, "[uniform]");
  expect_invalid([&] { seisoku::uniform(i32, 0, 0); }, "[uniform]");
  expect_invalid([&] { seisoku::normal(f32, 0, 0, 0.0, -1.0); }, "[normal]");
  expect_invalid([&] { seisoku::normal(f32, 0, 0, nan, 1.0); }, "[normal]");
  expect_invalid([&] { seisoku::normal(Tensor::empty({8}, DType::float16), 0, 0); }, "[normal]");
  expect_invalid([&] { seisoku::bernoulli(f32, 0, 0, 1.5); }, "[bernoulli]");
  expect_invalid([&] { seisoku::bernoulli(f32, 0, 0, -0.1); }, "[bernoulli]");
  expect_invalid([&] { seisoku::bernoulli(f32, 0, 0, nan); }, "[bernoulli]");
  expect_invalid([&] { seisoku::bernoulli(i32, 0, 0, 0.5); }, "[bernoulli]");
}

// ---- reproducibility ----

TEST(Reproducible, SeedAndOffset) {
  for (DType dtype : {DType::float32, DType::float64}) {
    SCOPED_TRACE(seisoku::dtype_name(dtype));
    const Tensor a = Tensor::empty({10007}, dtype), b = Tensor::empty({10007}, dtype);
    seisoku::normal(a, 5, 10);
    seisoku::normal(b, 5, 10);
    EXPECT_TRUE(same_bits(a, b));
    seisoku::uniform(a, 5, 10);
    seisoku::uniform(b, 5, 10);
    EXPECT_TRUE(same_bits(a, b));

    for (auto [seed, offset] : {std::pair<std::uint64_t, std::uint64_t>{5, 11}, {6, 10}, {5, 10 + (1ull << 32)}}) {
      seisoku::uniform(b, seed, offset);
      const std::vector<double> x = read(a), y = read(b);
      std::int64_t differ = 0;
      for (std::size_t i = 0; i < x.size(); ++i) differ += x[i] != y[i];
      EXPECT_GT(differ, 9900) << seed << " " << offset;
    }

    const Tensor head = Tensor::empty({10}, dtype);
    seisoku::normal(head, 5, 10);
    seisoku::normal(a, 5, 10);
    EXPECT_EQ(std::memcmp(head.data(), a.data(), head.nbytes()), 0);
  }
}

TEST(Reproducible, ThreadCountDoesNotChangeResults) {
  auto run = [](int threads) {
    const ThreadCount guard(threads);
    std::vector<Tensor> out;
    for (DType dtype : {DType::float32, DType::float64}) {
      Tensor u = Tensor::empty({kDraws}, dtype), z = Tensor::empty({kDraws}, dtype);
      Tensor b = Tensor::empty({kDraws}, dtype);
      seisoku::uniform(u, 11, 3, -1.0, 1.0);
      seisoku::normal(z, 11, 4);
      seisoku::bernoulli(b, 11, 5, 0.25);
      Tensor s = Tensor::empty({1}, dtype), n2 = Tensor::empty({1}, dtype);
      Tensor rows = Tensor::empty({1000}, dtype);
      seisoku::sum(u, s);
      seisoku::norm(z, 2.0, n2);
      seisoku::row_norm(z.reshape({1000, 1000}), 1.0, rows);
      out.insert(out.end(), {u, z, b, s, n2, rows});
    }
    Tensor mask = Tensor::empty({kDraws}, DType::uint8);
    seisoku::bernoulli(mask, 11, 6, 0.5);
    out.push_back(mask);
    return out;
  };
  const std::vector<Tensor> one = run(1), two = run(2), three = run(3);
  ASSERT_EQ(one.size(), two.size());
  for (std::size_t i = 0; i < one.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_TRUE(same_bits(one[i], two[i]));
    EXPECT_TRUE(same_bits(one[i], three[i]));
  }
}

TEST(Generator, NextOffsetAdvances) {
  seisoku::Generator gen(7, 10);
  EXPECT_EQ(gen.seed(), 7u);
  EXPECT_EQ(gen.offset(), 10u);
  EXPECT_EQ(gen.next_offset(), 10u);
  EXPECT_EQ(gen.offset(), 11u);
  EXPECT_EQ(gen.next_offset(5), 11u);
  EXPECT_EQ(gen.next_offset(), 16u);
  gen.set_offset(100);
  EXPECT_EQ(gen.next_offset(), 100u);
  EXPECT_EQ(seisoku::Generator(3).offset(), 0u);

  seisoku::Generator g(1);
  const Tensor a = Tensor::empty({64}, DType::float32), b = Tensor::empty({64}, DType::float32);
  seisoku::uniform(a, g.seed(), g.next_offset());
  seisoku::uniform(b, g.seed(), g.next_offset());
  EXPECT_FALSE(same_bits(a, b));
}

// The CUDA twins must give the CPU's bits (runs only where a GPU is usable).
TEST(Reproducible, CudaMatchesCpuBits) {
  if (!seisoku::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (DType dtype : {DType::float32, DType::float64}) {
    SCOPED_TRACE(seisoku::dtype_name(dtype));
    const Tensor cpu = Tensor::empty({100003}, dtype);
    const Tensor gpu = Tensor::empty({100003}, dtype, Device::cuda);
    seisoku::uniform(cpu, 3, 9, -1.0, 2.0);
    seisoku::uniform(gpu, 3, 9, -1.0, 2.0);
    EXPECT_TRUE(same_bits(cpu, gpu.to(Device::cpu)));
    seisoku::normal(cpu, 3, 9, 0.5, 2.0);
    seisoku::normal(gpu, 3, 9, 0.5, 2.0);
    EXPECT_TRUE(same_bits(cpu, gpu.to(Device::cpu)));
    seisoku::bernoulli(cpu, 3, 9, 0.3);
    seisoku::bernoulli(gpu, 3, 9, 0.3);
    EXPECT_TRUE(same_bits(cpu, gpu.to(Device::cpu)));
  }
}

}  // namespace
