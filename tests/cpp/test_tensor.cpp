// Tensor handles, dtypes and the runtime (threads, build info, CUDA availability).
#include <gtest/gtest.h>
#include <seisoku/seisoku.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using seisoku::Device;
using seisoku::DType;
using seisoku::Shape;
using seisoku::Tensor;

const std::vector<DType> kAllDTypes = {DType::float32, DType::float64, DType::float16,
                                       DType::bfloat16, DType::int8,    DType::uint8,
                                       DType::int16,   DType::int32,   DType::int64};

// Sets the thread count for one scope and restores the previous one.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : previous_(seisoku::get_num_threads()) { seisoku::set_num_threads(n); }
  ~ThreadCount() { seisoku::set_num_threads(previous_); }

 private:
  int previous_;
};

TEST(Tensor, EmptyShapeNumelNbytes) {
  const Tensor t = Tensor::empty({2, 3, 4}, DType::float32);
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 96u);
  EXPECT_EQ(t.dtype(), DType::float32);
  EXPECT_EQ(t.device(), Device::cpu);
  EXPECT_FALSE(t.is_cuda());
  EXPECT_TRUE(t.owns_storage());
  EXPECT_TRUE(t.defined());
  EXPECT_NE(t.data(), nullptr);
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(-3), 2);
  EXPECT_THROW(t.size(3), std::invalid_argument);
  EXPECT_THROW(t.size(-4), std::invalid_argument);
}

TEST(Tensor, ScalarAndEmptyShapes) {
  const Tensor scalar = Tensor::empty({}, DType::float64);
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.nbytes(), 8u);

  const Tensor none = Tensor::empty({0, 5}, DType::float32);
  EXPECT_EQ(none.numel(), 0);
  EXPECT_EQ(none.nbytes(), 0u);
  EXPECT_TRUE(none.defined());
  EXPECT_NE(none.data(), nullptr);
  EXPECT_FALSE(Tensor().defined());
}

TEST(Tensor, ItemsizeAndNamesOfEveryDType) {
  const std::vector<std::pair<DType, std::size_t>> sizes = {
      {DType::float32, 4}, {DType::float64, 8}, {DType::float16, 2}, {DType::bfloat16, 2}, {DType::int8, 1},
      {DType::uint8, 1},   {DType::int16, 2},   {DType::int32, 4},   {DType::int64, 8}};
  ASSERT_EQ(sizes.size(), kAllDTypes.size());
  for (const auto& [dtype, size] : sizes) {
    SCOPED_TRACE(seisoku::dtype_name(dtype));
    EXPECT_EQ(seisoku::itemsize(dtype), size);
    EXPECT_EQ(Tensor::empty({3, 5}, dtype).nbytes(), 15 * size);
    EXPECT_EQ(seisoku::dtype_from_name(seisoku::dtype_name(dtype)), dtype);
  }
  EXPECT_STREQ(seisoku::dtype_name(DType::bfloat16), "bfloat16");
  EXPECT_TRUE(seisoku::is_floating(DType::float16));
  EXPECT_TRUE(seisoku::is_floating(DType::bfloat16));
  EXPECT_FALSE(seisoku::is_floating(DType::int8));
  EXPECT_FALSE(seisoku::is_floating(DType::int64));
  EXPECT_THROW(seisoku::dtype_from_name("float128"), std::invalid_argument);
}

TEST(Tensor, ZerosOfEveryDTypeAreZeroBytes) {
  for (DType dtype : kAllDTypes) {
    SCOPED_TRACE(seisoku::dtype_name(dtype));
    const Tensor t = Tensor::zeros({100003}, dtype);
    EXPECT_EQ(t.numel(), 100003);
    const std::vector<unsigned char> zero(t.nbytes(), 0);
    EXPECT_EQ(std::memcmp(t.data(), zero.data(), t.nbytes()), 0);
  }
}

TEST(Tensor, ViewBorrowsMemory) {
  std::vector<float> buf = {1, 2, 3, 4, 5, 6};
  const Tensor v = Tensor::view(buf.data(), {2, 3}, DType::float32);
  EXPECT_EQ(v.data(), buf.data());
  EXPECT_FALSE(v.owns_storage());
  EXPECT_EQ(v.shape(), (Shape{2, 3}));
  v.data_as<float>()[4] = 42.0f;
  EXPECT_EQ(buf[4], 42.0f);
  seisoku::fill(v, 7.0);
  for (float x : buf) EXPECT_EQ(x, 7.0f);

  EXPECT_THROW(Tensor::view(nullptr, {3}, DType::float32), std::invalid_argument);
  EXPECT_EQ(Tensor::view(nullptr, {0}, DType::float32).numel(), 0);
}

TEST(Tensor, ViewKeepsOwnerAlive) {
  auto owner = std::make_shared<std::vector<double>>(8, 1.5);
  {
    const Tensor v = Tensor::view(owner->data(), {8}, DType::float64, Device::cpu, 0, owner);
    EXPECT_EQ(owner.use_count(), 2);
    const Tensor copy = v;
    EXPECT_EQ(copy.data(), v.data());
    EXPECT_EQ(owner.use_count(), 3);
  }
  EXPECT_EQ(owner.use_count(), 1);
}

TEST(Tensor, ReshapeSharesMemory) {
  const Tensor t = Tensor::zeros({2, 6}, DType::int32);
  const Tensor r = t.reshape({3, 4});
  EXPECT_EQ(r.shape(), (Shape{3, 4}));
  EXPECT_EQ(r.numel(), 12);
  EXPECT_EQ(r.data(), t.data());
  r.data_as<std::int32_t>()[11] = -9;
  EXPECT_EQ(t.data_as<std::int32_t>()[11], -9);
  EXPECT_EQ(t.reshape({12}).shape(), (Shape{12}));
  EXPECT_EQ(t.reshape({1, 12, 1}).dim(), 3);

  EXPECT_THROW(t.reshape({5}), std::invalid_argument);
  EXPECT_THROW(t.reshape({2, 7}), std::invalid_argument);
  EXPECT_THROW(t.reshape({-2, -6}), std::invalid_argument);
}

TEST(Tensor, NegativeSizesThrow) {
  float x = 0;
  EXPECT_THROW(Tensor::empty({2, -1}, DType::float32), std::invalid_argument);
  EXPECT_THROW(Tensor::zeros({-3}, DType::int8), std::invalid_argument);
  EXPECT_THROW(Tensor::view(&x, {-1}, DType::float32), std::invalid_argument);
  EXPECT_THROW(seisoku::shape_numel({4, -2}), std::invalid_argument);
  EXPECT_THROW(seisoku::shape_numel({std::int64_t{1} << 32, std::int64_t{1} << 32}), std::invalid_argument);
  EXPECT_EQ(seisoku::shape_numel({}), 1);
  EXPECT_EQ(seisoku::shape_numel({3, 0, 7}), 0);
}

// numel * itemsize must not wrap around size_t.
TEST(Tensor, ByteCountOverflowThrows) {
  EXPECT_ANY_THROW(Tensor::empty({std::int64_t{1} << 62}, DType::float32));
  EXPECT_ANY_THROW(Tensor::empty({(std::int64_t{1} << 61) - 1}, DType::float64));
}

TEST(Tensor, Describe) {
  float x[4] = {};
  EXPECT_EQ(Tensor::empty({2, 3}, DType::float32).describe(), "float32(2, 3) cpu");
  EXPECT_EQ(Tensor::empty({5}, DType::float64).describe(), "float64(5,) cpu");
  EXPECT_EQ(Tensor::empty({}, DType::int8).describe(), "int8() cpu");
  EXPECT_EQ(Tensor::view(x, {4}, DType::bfloat16, Device::cuda, 1).describe(), "bfloat16(4,) cuda:1");
  EXPECT_EQ(seisoku::shape_str({7, 1}), "(7, 1)");
}

TEST(Tensor, ToCpuCopies) {
  const Tensor src = Tensor::empty({3, 4}, DType::int16);
  for (std::int64_t i = 0; i < src.numel(); ++i)
    src.data_as<std::int16_t>()[i] = static_cast<std::int16_t>(i * 37 - 200);
  const Tensor dst = src.to(Device::cpu);
  EXPECT_NE(dst.data(), src.data());
  EXPECT_TRUE(dst.owns_storage());
  EXPECT_EQ(dst.shape(), src.shape());
  EXPECT_EQ(dst.dtype(), DType::int16);
  EXPECT_EQ(std::memcmp(dst.data(), src.data(), src.nbytes()), 0);
  dst.data_as<std::int16_t>()[0] = 1234;
  EXPECT_EQ(src.data_as<std::int16_t>()[0], -200);

  std::vector<double> buf = {1.0, -2.0, 3.5};
  const Tensor copied = Tensor::view(buf.data(), {3}, DType::float64).to(Device::cpu);
  buf[1] = 99.0;
  EXPECT_EQ(copied.data_as<double>()[1], -2.0);
}

// ---- runtime ----

TEST(Runtime, SetNumThreads) {
  EXPECT_THROW(seisoku::set_num_threads(0), std::invalid_argument);
  EXPECT_THROW(seisoku::set_num_threads(-2), std::invalid_argument);
  const int before = seisoku::get_num_threads();
  EXPECT_GE(before, 1);
  {
    const ThreadCount three(3);
    if (seisoku::build_info()["openmp"] == "yes") {
      EXPECT_EQ(seisoku::get_num_threads(), 3);
    }
  }
  EXPECT_EQ(seisoku::get_num_threads(), before);
}

TEST(Runtime, BuildInfo) {
  auto info = seisoku::build_info();
  for (const char* key : {"version", "blas_core", "cuda_built", "openmp", "blas", "num_threads"}) {
    SCOPED_TRACE(key);
    ASSERT_EQ(info.count(key), 1u);
  }
  EXPECT_TRUE(std::regex_match(info["version"], std::regex(R"(\d+\.\d+\.\d+.*)"))) << info["version"];
  EXPECT_FALSE(info["blas_core"].empty());
  EXPECT_EQ(info["cuda_built"], seisoku::cuda::is_built() ? "yes" : "no");
  if (!seisoku::cuda::is_built()) {
    EXPECT_FALSE(seisoku::cuda::is_available());
  }
  EXPECT_EQ(seisoku::cuda::is_available(), seisoku::cuda::device_count() > 0);
}

// Without a usable GPU, ops on CUDA tensors must throw, not crash or run on the host.
TEST(Runtime, CudaTensorsThrowWithoutDevice) {
  if (seisoku::cuda::is_available()) GTEST_SKIP() << "a CUDA device is available";
  std::vector<float> host(16, 1.0f);
  const Tensor a = Tensor::view(host.data(), {4, 4}, DType::float32, Device::cuda);
  const Tensor one = Tensor::view(host.data(), {1}, DType::float32, Device::cuda);
  const Tensor cpu = Tensor::view(host.data(), {4, 4}, DType::float32);
  auto expect_error = [](const char* what, auto&& op) {
    SCOPED_TRACE(what);
    try {
      op();
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error&) {
    } catch (const std::invalid_argument&) {
    }
  };
  expect_error("add", [&] { seisoku::add(a, a, a); });
  expect_error("fill", [&] { seisoku::fill(a, 0.0); });
  expect_error("sum", [&] { seisoku::sum(a, one); });
  expect_error("norm", [&] { seisoku::norm(a, 2.0, one); });
  expect_error("gemm", [&] { seisoku::gemm(a, a, a); });
  expect_error("uniform", [&] { seisoku::uniform(a, 0, 0); });
  expect_error("copy to host", [&] { seisoku::copy(a, cpu); });
  expect_error("to(cuda)", [&] { (void)cpu.to(Device::cuda); });
  expect_error("empty(cuda)", [&] { (void)Tensor::empty({4}, DType::float32, Device::cuda); });
  for (float x : host) EXPECT_EQ(x, 1.0f);
}

}  // namespace
