// CUDA twins of the int8 family (seisoku/int8.hpp), the CPU kernels of cpp/src/cpu/int8.cpp
// being their oracle; the per-element math is kernels/int8_math.hpp, so results match bit for bit.
//   int8_max_abs   grid-stride max of |x| as the bits of a non-negative float (they order as
//                  unsigned ints) with atomicMax; atomicMin of the first non-finite index.
//   quantize_int8  one thread per element.
//   int8_gemm      __dp4a (four s8 x s8 products added into an s32) over the weight's device
//                  codes, rows padded to a multiple of 4 inputs: a 16 x 16 tile of outputs per
//                  block, each thread one output, the x and w rows staged through shared memory
//                  in chunks of 64 inputs (16 words); the same exact int32 sum as the CPU, then
//                  the shared epilogue.
//   fake_quantize_int8(_backward)  one thread per element, the row's scale by index / per_row.
//   int8_im2col, int8_rows_to_nchw  one thread per output element, grid-stride.
#include <cstdint>
#include <cstring>

#include "cuda_util.hpp"
#include "kernels/int8.hpp"
#include "kernels/int8_math.hpp"

namespace seisoku::gpu {
namespace {

constexpr int kTile = 16;
constexpr int kChunkWords = 16;  // 64 inputs per shared-memory stage

__global__ void max_abs_kernel(const float* x, std::int64_t n, unsigned* max_bits, unsigned long long* bad) {
  unsigned local = 0;
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    const float a = fabsf(x[i]);
    if (!(a <= 3.402823466e38f)) atomicMin(bad, static_cast<unsigned long long>(i));
    else local = ::max(local, __float_as_uint(a));
  }
  atomicMax(max_bits, local);
}

__global__ void quantize_kernel(const float* x, std::int8_t* q, std::int64_t n, float inv,
                                unsigned long long* bad) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    const float v = x[i];
    if (v != v) {
      atomicMin(bad, static_cast<unsigned long long>(i));
      q[i] = 0;
    } else {
      q[i] = detail::int8_code(v, inv);
    }
  }
}

// x (N, K) codes (any K), w (O, Kp) codes (Kp = K padded to 4, zero pads).
__global__ void gemm_kernel(const std::int8_t* x, const std::int8_t* w, const float* w_scales, const float* bias,
                            float x_scale, float* y, std::int32_t* acc_out, std::int8_t* y8, float out_inv,
                            std::int64_t N, std::int64_t K, std::int64_t Kp, std::int64_t O, bool relu) {
  __shared__ int xs[kTile][kChunkWords + 1];
  __shared__ int ws[kTile][kChunkWords + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;  // tx: output in the tile, ty: row in the tile
  const std::int64_t n = blockIdx.y * std::int64_t{kTile} + ty;
  const std::int64_t o = blockIdx.x * std::int64_t{kTile} + tx;
  const std::int64_t groups = Kp / 4;
  int acc = 0;
  for (std::int64_t g0 = 0; g0 < groups; g0 += kChunkWords) {
    // Thread (ty, tx) loads word tx of row ty of both tiles (x words built byte by byte: rows of x
    // are not padded).
    const std::int64_t g = g0 + tx;
    const std::int64_t xn = blockIdx.y * std::int64_t{kTile} + ty;
    int xv = 0;
    if (xn < N && g < groups) {
      const std::int8_t* row = x + xn * K;
      unsigned packed = 0;
      for (int b = 0; b < 4; ++b) {
        const std::int64_t k = 4 * g + b;
        const unsigned byte = k < K ? static_cast<unsigned char>(row[k]) : 0u;
        packed |= byte << (8 * b);
      }
      xv = static_cast<int>(packed);
    }
    xs[ty][tx] = xv;
    const std::int64_t wo = blockIdx.x * std::int64_t{kTile} + ty;
    ws[ty][tx] = (wo < O && g < groups) ? reinterpret_cast<const int*>(w + wo * Kp)[g] : 0;
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kChunkWords; ++j) acc = __dp4a(xs[ty][j], ws[tx][j], acc);
    __syncthreads();
  }
  if (n < N && o < O) {
    if (acc_out != nullptr) {
      acc_out[n * O + o] = acc;
    } else {
      const float m = x_scale * w_scales[o];
      const float v = detail::int8_epilogue(acc, m, bias != nullptr ? bias[o] : 0.0f, relu);
      if (y8 != nullptr) y8[n * O + o] = detail::int8_code(v, out_inv);
      else y[n * O + o] = v;
    }
  }
}

__global__ void fake_quantize_kernel(const float* x, const float* scales, float* y, std::int64_t n,
                                     std::int64_t per_row, bool per_channel) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    const float s = scales[per_channel ? i / per_row : 0];
    y[i] = static_cast<float>(detail::int8_code(x[i], 1.0f / s)) * s;
  }
}

__global__ void fake_quantize_backward_kernel(const float* g, const float* x, const float* scales, float* gx,
                                              std::int64_t n, std::int64_t per_row, bool per_channel) {
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < n;
       i += std::int64_t{gridDim.x} * blockDim.x) {
    const float s = scales[per_channel ? i / per_row : 0];
    gx[i] = detail::int8_in_range(x[i], 1.0f / s) ? g[i] : 0.0f;
  }
}

// Stream-ordered scratch words, copied back once.
template <class T>
class Scratch {
 public:
  explicit Scratch(unsigned char fill) {
    SEISOKU_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), sizeof(T), stream()));
    SEISOKU_CUDA_CHECK(cudaMemsetAsync(p_, fill, sizeof(T), stream()));
  }
  ~Scratch() { cudaFreeAsync(p_, stream()); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return p_; }
  T read() const {
    T v{};
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(&v, p_, sizeof(T), cudaMemcpyDeviceToHost, stream()));
    SEISOKU_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return v;
  }

 private:
  T* p_ = nullptr;
};

std::int64_t first_bad(unsigned long long v) { return v == ~0ull ? -1 : static_cast<std::int64_t>(v); }

__global__ void im2col_kernel(const std::int8_t* x, std::int8_t* cols, ConvGeometry g) {
  const std::int64_t K = g.k(), L = g.l(), total = g.n * L * K;
  for (std::int64_t idx = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += std::int64_t{gridDim.x} * blockDim.x) {
    const std::int64_t r = idx / K, k = idx % K;
    const std::int64_t n = r / L, oh = (r % L) / g.wo, ow = r % g.wo;
    const std::int64_t j = k % g.kw, i = (k / g.kw) % g.kh, c = k / (g.kh * g.kw);
    const std::int64_t h = oh * g.sh - g.ph + i, w = ow * g.sw - g.pw + j;
    cols[idx] = (h >= 0 && h < g.h && w >= 0 && w < g.w) ? x[((n * g.c + c) * g.h + h) * g.w + w] : std::int8_t{0};
  }
}

__global__ void rows_to_nchw_kernel(const float* rows, float* y, std::int64_t N, std::int64_t O, std::int64_t P) {
  const std::int64_t total = N * O * P;
  for (std::int64_t idx = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += std::int64_t{gridDim.x} * blockDim.x) {
    const std::int64_t p = idx % P, o = (idx / P) % O, n = idx / (P * O);
    y[idx] = rows[(n * P + p) * O + o];
  }
}

}  // namespace

float int8_max_abs(const Tensor& x, std::int64_t* bad) {
  DeviceGuard guard(x.device_index());
  Scratch<unsigned> bits(0);
  Scratch<unsigned long long> first(0xff);
  max_abs_kernel<<<grid_for(x.numel(), 4), kThreads, 0, stream()>>>(x.data_as<float>(), x.numel(), bits.get(),
                                                                     first.get());
  check_launch();
  *bad = first_bad(first.read());
  const unsigned b = bits.read();
  float m;
  static_assert(sizeof(m) == sizeof(b), "float is 32 bits");
  std::memcpy(&m, &b, sizeof(m));
  return m;
}

std::int64_t quantize_int8(const Tensor& x, const Tensor& out, float inv_scale) {
  DeviceGuard guard(x.device_index());
  Scratch<unsigned long long> first(0xff);
  quantize_kernel<<<grid_for(x.numel()), kThreads, 0, stream()>>>(x.data_as<float>(), out.data_as<std::int8_t>(),
                                                                 x.numel(), inv_scale, first.get());
  check_launch();
  return first_bad(first.read());
}

void int8_gemm(const Tensor& xq, float x_scale, const Int8Weight& w, const Tensor& bias, const Tensor& y, bool relu,
               bool acc_only, float out_inv) {
  DeviceGuard guard(xq.device_index());
  const Tensor& codes = w.device_codes(Device::cuda, xq.device_index());
  const Tensor& scales = w.device_scales(Device::cuda, xq.device_index());
  const std::int64_t N = xq.shape()[0], O = w.out_features();
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>((O + kTile - 1) / kTile), static_cast<unsigned>((N + kTile - 1) / kTile));
  gemm_kernel<<<grid, block, 0, stream()>>>(
      xq.data_as<std::int8_t>(), codes.data_as<std::int8_t>(), scales.data_as<float>(),
      bias.defined() ? bias.data_as<float>() : nullptr, x_scale,
      acc_only || out_inv > 0 ? nullptr : y.data_as<float>(), acc_only ? y.data_as<std::int32_t>() : nullptr,
      out_inv > 0 ? y.data_as<std::int8_t>() : nullptr, out_inv, N, w.in_features(), w.in_padded(), O, relu);
  check_launch();
}

void fake_quantize_int8(const Tensor& x, const Tensor& scales, const Tensor& y) {
  DeviceGuard guard(x.device_index());
  const bool per_channel = scales.numel() > 1;
  const std::int64_t per_row = per_channel ? x.numel() / scales.numel() : x.numel();
  fake_quantize_kernel<<<grid_for(x.numel()), kThreads, 0, stream()>>>(x.data_as<float>(), scales.data_as<float>(),
                                                                       y.data_as<float>(), x.numel(), per_row,
                                                                       per_channel);
  check_launch();
}

void fake_quantize_int8_backward(const Tensor& grad, const Tensor& x, const Tensor& scales, const Tensor& gx) {
  DeviceGuard guard(x.device_index());
  const bool per_channel = scales.numel() > 1;
  const std::int64_t per_row = per_channel ? x.numel() / scales.numel() : x.numel();
  fake_quantize_backward_kernel<<<grid_for(x.numel()), kThreads, 0, stream()>>>(
      grad.data_as<float>(), x.data_as<float>(), scales.data_as<float>(), gx.data_as<float>(), x.numel(), per_row,
      per_channel);
  check_launch();
}

void int8_im2col(const Tensor& xq, const Tensor& cols, const ConvGeometry& g) {
  DeviceGuard guard(xq.device_index());
  im2col_kernel<<<grid_for(cols.numel()), kThreads, 0, stream()>>>(xq.data_as<std::int8_t>(),
                                                                  cols.data_as<std::int8_t>(), g);
  check_launch();
}

void int8_rows_to_nchw(const Tensor& rows, const Tensor& y) {
  DeviceGuard guard(y.device_index());
  const std::int64_t N = y.shape()[0], O = y.shape()[1], P = y.shape()[2] * y.shape()[3];
  rows_to_nchw_kernel<<<grid_for(y.numel()), kThreads, 0, stream()>>>(rows.data_as<float>(), y.data_as<float>(), N,
                                                                       O, P);
  check_launch();
}

}  // namespace seisoku::gpu
