// CUDA twins of the sparse linear products (cpp/src/cpu/sparse_linear.cpp is their oracle).
//
// Launch shapes (blocks of 8 warps):
// * transpose: 32 x 32 tiles through shared memory, x (n, cols) -> xt (cols, n).
// * product, n >= 32: a warp per row of A and per chunk of 128 samples, each lane holding 4
//   samples (b = lane + 32 k); per nonzero the lanes read 32 consecutive entries of xt's row
//   (coalesced) and the value is a broadcast. Output stores of a block's 8 rows share sectors.
// * product, n < 32: a warp per (row, sample), lanes over the row's nonzeros, then a shuffle
//   reduction in a fixed tree.
// * value gradient: a warp per row of A; per nonzero the lanes run over the batch of gzt and xt
//   (coalesced) and reduce by shuffles; lane 0 writes.
// Every multiply-add is an explicit fma (the build disables contraction), and each output's
// order of operations is fixed by the shapes only, so results do not depend on the launch.
#include <cstdint>

#include "core/dispatch.hpp"
#include "cuda_util.hpp"
#include "kernels/nn_math.hpp"
#include "kernels/sparse_linear.hpp"

namespace seisoku::gpu {
namespace {

constexpr int kWarps = 8;           // warps per block
constexpr int kPerLane = 4;         // samples per lane in the batch-lane product
constexpr std::int64_t kMinLanes = 32;  // below: lanes over nonzeros

// Stream-ordered device scratch of n elements of T, freed on the stream.
template <class T>
class Scratch {
 public:
  explicit Scratch(std::int64_t n) {
    SEISOKU_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&p_), sizeof(T) * (n > 0 ? n : 1), stream()));
  }
  ~Scratch() { cudaFreeAsync(p_, stream()); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* get() const { return p_; }

 private:
  T* p_ = nullptr;
};

template <class T>
__device__ T fma_(T a, T b, T c) {
  return fma(a, b, c);
}

template <class T>
__device__ T warp_sum(T v) {
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  return v;
}

template <class T>
__global__ void transpose_kernel(const T* x, T* xt, std::int64_t n, std::int64_t cols) {
  __shared__ T tile[32][33];
  const std::int64_t c0 = blockIdx.x * std::int64_t{32}, b0 = blockIdx.y * std::int64_t{32};
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const std::int64_t b = b0 + i, c = c0 + threadIdx.x;
    if (b < n && c < cols) tile[i][threadIdx.x] = x[b * cols + c];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const std::int64_t c = c0 + i, b = b0 + threadIdx.x;
    if (b < n && c < cols) xt[c * n + b] = tile[threadIdx.x][i];
  }
}

template <class T>
void transpose(const T* x, T* xt, std::int64_t n, std::int64_t cols) {
  const dim3 grid(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>((n + 31) / 32));
  transpose_kernel<T><<<grid, dim3(32, 8), 0, stream()>>>(x, xt, n, cols);
  check_launch();
}

// out[b, r] = act(sum_e a[e] bt[idx[e], b] + bias[r]), values through pos when given.
template <class T>
__global__ void product_lanes_kernel(const std::int64_t* ptr, const std::int32_t* idx, const std::int32_t* pos,
                                     const T* val, std::int64_t rows, const T* bt, std::int64_t n, const T* bias,
                                     Activation act, T slope, T* out) {
  const int lane = threadIdx.x % 32;
  const std::int64_t r = blockIdx.x * std::int64_t{kWarps} + threadIdx.x / 32;
  if (r >= rows) return;
  const std::int64_t b0 = blockIdx.y * std::int64_t{32 * kPerLane} + lane;
  T acc[kPerLane];
  for (int k = 0; k < kPerLane; ++k) acc[k] = T(0);
  for (std::int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
    const T w = pos != nullptr ? val[pos[e]] : val[e];
    const T* br = bt + static_cast<std::int64_t>(idx[e]) * n;
    for (int k = 0; k < kPerLane; ++k) {
      const std::int64_t b = b0 + 32 * k;
      if (b < n) acc[k] = fma_(w, br[b], acc[k]);
    }
  }
  const T bb = bias != nullptr ? bias[r] : T(0);
  for (int k = 0; k < kPerLane; ++k) {
    const std::int64_t b = b0 + 32 * k;
    if (b < n) out[b * rows + r] = detail::act_forward(acc[k] + bb, act, slope);
  }
}

// The same for few samples: a warp per (row, sample), lanes over the nonzeros, x in place.
template <class T>
__global__ void product_gather_kernel(const std::int64_t* ptr, const std::int32_t* idx, const std::int32_t* pos,
                                      const T* val, std::int64_t rows, const T* x, std::int64_t cols, const T* bias,
                                      Activation act, T slope, T* out) {
  const int lane = threadIdx.x % 32;
  const std::int64_t r = blockIdx.x * std::int64_t{kWarps} + threadIdx.x / 32, b = blockIdx.y;
  if (r >= rows) return;
  const T* xb = x + b * cols;
  T s = T(0);
  for (std::int64_t e = ptr[r] + lane; e < ptr[r + 1]; e += 32)
    s = fma_(pos != nullptr ? val[pos[e]] : val[e], xb[idx[e]], s);
  s = warp_sum(s);
  if (lane == 0) out[b * rows + r] = detail::act_forward(s + (bias != nullptr ? bias[r] : T(0)), act, slope);
}

// g[e] (+)= sum_b gzt[r, b] xt[idx[e], b] for the nonzeros e of row r.
template <class T>
__global__ void sddmm_kernel(const std::int64_t* ptr, const std::int32_t* idx, std::int64_t rows, const T* gzt,
                             const T* xt, std::int64_t n, T* g, bool add) {
  const int lane = threadIdx.x % 32;
  const std::int64_t r = blockIdx.x * std::int64_t{kWarps} + threadIdx.x / 32;
  if (r >= rows) return;
  const T* gr = gzt + r * n;
  for (std::int64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
    const T* xr = xt + static_cast<std::int64_t>(idx[e]) * n;
    T s = T(0);
    for (std::int64_t b = lane; b < n; b += 32) s = fma_(gr[b], xr[b], s);
    s = warp_sum(s);
    if (lane == 0) g[e] = add ? g[e] + s : s;
  }
}

// out (n, rows) = act(x (n, cols) A^T + bias); x transposed first for the batch-lane product.
template <class T>
void product(const std::int64_t* ptr, const std::int32_t* idx, const std::int32_t* pos, const T* val,
             std::int64_t rows, const T* x, const T* xt_given, std::int64_t n, std::int64_t cols, const T* bias,
             Activation act, T slope, T* out) {
  const unsigned row_blocks = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
  if (n < kMinLanes) {
    product_gather_kernel<T><<<dim3(row_blocks, static_cast<unsigned>(n)), 32 * kWarps, 0, stream()>>>(
        ptr, idx, pos, val, rows, x, cols, bias, act, slope, out);
    check_launch();
    return;
  }
  const T* xt = xt_given;
  Scratch<T> scratch(xt_given == nullptr ? cols * n : 0);
  if (xt == nullptr) {
    transpose(x, scratch.get(), n, cols);
    xt = scratch.get();
  }
  const unsigned batch_blocks = static_cast<unsigned>((n + 32 * kPerLane - 1) / (32 * kPerLane));
  product_lanes_kernel<T><<<dim3(row_blocks, batch_blocks), 32 * kWarps, 0, stream()>>>(
      ptr, idx, pos, val, rows, xt, n, bias, act, slope, out);
  check_launch();
}

}  // namespace

void sparse_linear(const Tensor& x, const SparsePattern& w, const Tensor& values, const Tensor& bias,
                   const Tensor& out, Activation act, double slope) {
  DeviceGuard guard(x.device_index());
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    product<T>(w.row_ptr.data_as<std::int64_t>(), w.col_idx.data_as<std::int32_t>(), nullptr, values.data_as<T>(),
               w.rows, x.data_as<T>(), nullptr, x.shape()[0], w.cols, bias.defined() ? bias.data_as<T>() : nullptr,
               act, static_cast<T>(slope), out.data_as<T>());
  });
}

void sparse_linear_backward(const Tensor& grad_z, const Tensor& x, const SparsePattern& w, const Tensor& values,
                            const Tensor& grad_x, const Tensor& grad_values, bool accumulate) {
  DeviceGuard guard(x.device_index());
  detail::dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const std::int64_t n = x.shape()[0], rows = w.rows, cols = w.cols;
    const T* gz = grad_z.data_as<T>();
    const bool need_gzt = grad_values.defined() || (grad_x.defined() && n >= kMinLanes);
    Scratch<T> gzt(need_gzt ? rows * n : 0);
    if (need_gzt) transpose(gz, gzt.get(), n, rows);
    if (grad_x.defined())
      product<T>(w.t_ptr.data_as<std::int64_t>(), w.t_row_idx.data_as<std::int32_t>(), w.t_pos.data_as<std::int32_t>(),
                 values.data_as<T>(), cols, gz, need_gzt ? gzt.get() : nullptr, n, rows, nullptr,
                 Activation::identity, T(0), grad_x.data_as<T>());
    if (grad_values.defined()) {
      Scratch<T> xt(cols * n);
      transpose(x.data_as<T>(), xt.get(), n, cols);
      sddmm_kernel<T><<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), 32 * kWarps, 0, stream()>>>(
          w.row_ptr.data_as<std::int64_t>(), w.col_idx.data_as<std::int32_t>(), rows, gzt.get(), xt.get(), n,
          grad_values.data_as<T>(), accumulate);
      check_launch();
    }
  });
}

}  // namespace seisoku::gpu
