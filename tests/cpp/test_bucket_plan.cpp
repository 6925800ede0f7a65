// Gradient bucket plans (seisoku/distributed/bucket_plan.hpp): every parameter exactly once, in
// reverse registration order, buckets within the byte cap, of one dtype, and each bucket as full as
// the cap allows (the next parameter did not fit or changed dtype).
#include <gtest/gtest.h>
#include <seisoku/distributed/bucket_plan.hpp>
#include <seisoku/seisoku.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace dist = seisoku::distributed;
using seisoku::DType;
using seisoku::Tensor;
using seisoku::nn::Parameter;
using seisoku::nn::ParameterPtr;

ParameterPtr param(std::int64_t n, DType dtype = DType::float32) {
  return std::make_shared<Parameter>(Tensor::zeros({n}, dtype), "p" + std::to_string(n));
}

void expect_valid(const std::vector<ParameterPtr>& params, const std::vector<dist::Bucket>& buckets,
                  std::size_t cap) {
  std::vector<std::size_t> order;
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    const dist::Bucket& bucket = buckets[b];
    ASSERT_FALSE(bucket.slots.empty());
    std::int64_t offset = 0;
    std::size_t bytes = 0;
    for (const dist::BucketSlot& slot : bucket.slots) {
      const Tensor& v = params[slot.parameter]->value();
      EXPECT_EQ(v.dtype(), bucket.dtype);
      EXPECT_EQ(slot.offset, offset);
      EXPECT_EQ(slot.numel, v.numel());
      offset += slot.numel;
      bytes += v.nbytes();
      order.push_back(slot.parameter);
    }
    EXPECT_EQ(bucket.numel, offset);
    EXPECT_EQ(bucket.nbytes(), bytes);
    if (bucket.slots.size() > 1) {
      EXPECT_LE(bytes, cap) << "bucket " << b;
    }
    if (b + 1 < buckets.size()) {
      const Tensor& next = params[buckets[b + 1].slots.front().parameter]->value();
      EXPECT_TRUE(next.dtype() != bucket.dtype || bytes + next.nbytes() > cap) << "bucket " << b << " not full";
    }
  }
  ASSERT_EQ(order.size(), params.size());
  for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], params.size() - 1 - i);
}

TEST(BucketPlan, PacksInReverseOrderUpToTheCap) {
  // float32 sizes 10, 20, 30, 5, 100 (bytes 40, 80, 120, 20, 400), cap 160 bytes:
  // reverse order 100 (alone: over the cap), then 5 + 30 (140 bytes; + 20 more would be 220), then 20 + 10.
  std::vector<ParameterPtr> params = {param(10), param(20), param(30), param(5), param(100)};
  const auto buckets = dist::plan_buckets(params, 160);
  expect_valid(params, buckets, 160);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0].numel, 100);
  EXPECT_EQ(buckets[1].numel, 35);
  EXPECT_EQ(buckets[2].numel, 30);
  EXPECT_EQ(buckets[2].slots[0].parameter, 1u);
  EXPECT_EQ(buckets[2].slots[1].offset, 20);
}

TEST(BucketPlan, InvariantsOverManyShapesAndCaps) {
  std::vector<ParameterPtr> params;
  for (int i = 0; i < 40; ++i)
    params.push_back(param(1 + (i * 37) % 53, (i / 7) % 2 ? DType::float64 : DType::float32));
  for (std::size_t cap : {1u, 8u, 64u, 200u, 1000u, 100000u}) {
    const auto buckets = dist::plan_buckets(params, cap);
    expect_valid(params, buckets, cap);
    if (cap == 1) {
      EXPECT_EQ(buckets.size(), params.size());
    }
  }
  // The default cap (25 MiB) holds a small model in one bucket per dtype run.
  std::vector<ParameterPtr> small = {param(1000), param(1000)};
  EXPECT_EQ(dist::plan_buckets(small).size(), 1u);
}

TEST(BucketPlan, BadArgumentsThrow) {
  const auto message = [](std::vector<ParameterPtr> params, std::size_t cap) {
    try {
      dist::plan_buckets(params, cap);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  const ParameterPtr p = param(4);
  EXPECT_NE(message({p}, 0).find("argument 'bucket_bytes' must be > 0"), std::string::npos);
  EXPECT_NE(message({p, nullptr}, 64).find("argument 'params[1]' must be a parameter"), std::string::npos);
  EXPECT_NE(message({p, p}, 64).find("must appear once"), std::string::npos);
  const auto ints = std::make_shared<Parameter>(Tensor::zeros({3}, DType::int32));
  EXPECT_NE(message({ints}, 64).find("must be float32 or float64"), std::string::npos);
}

}  // namespace
