// seisoku from C++: random matrices, a GEMM checked against a plain loop, and reductions.
#include <seisoku/seisoku.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>

int main() {
  using seisoku::DType;
  using seisoku::Tensor;

  const std::int64_t m = 64, k = 48, n = 32;
  Tensor a = Tensor::empty({m, k}, DType::float32);
  Tensor b = Tensor::empty({k, n}, DType::float32);
  Tensor c = Tensor::empty({m, n}, DType::float32);

  // Each draw takes a fresh offset of the generator's Philox stream.
  seisoku::Generator gen(/*seed=*/42);
  seisoku::uniform(a, gen.seed(), gen.next_offset(), -1.0, 1.0);
  seisoku::uniform(b, gen.seed(), gen.next_offset(), -1.0, 1.0);

  seisoku::gemm(a, b, c);  // c = a @ b

  const float* pa = a.data_as<float>();
  const float* pb = b.data_as<float>();
  const float* pc = c.data_as<float>();
  double max_err = 0.0;
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double ref = 0.0;
      for (std::int64_t p = 0; p < k; ++p) ref += double(pa[i * k + p]) * double(pb[p * n + j]);
      max_err = std::fmax(max_err, std::fabs(ref - double(pc[i * n + j])));
    }
  }
  if (max_err > 1e-4) {
    std::fprintf(stderr, "gemm differs from the reference loop: max abs error %g\n", max_err);
    return 1;
  }

  Tensor norm2 = Tensor::empty({1}, DType::float32);
  Tensor total = Tensor::empty({1}, DType::float32);
  seisoku::norm(c, 2.0, norm2);
  seisoku::sum(c, total);

  std::printf("seisoku %s\n", seisoku::build_info()["version"].c_str());
  std::printf("c = a @ b: %s, max abs error vs loop %.3g\n", c.describe().c_str(), max_err);
  std::printf("||c||_2 = %.6f, sum(c) = %.6f\n", norm2.data_as<float>()[0], total.data_as<float>()[0]);
  std::printf("OK\n");
  return 0;
}
