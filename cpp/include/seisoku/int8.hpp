#pragma once
// Symmetric int8 quantization and int8 x int8 -> int32 products with a fused epilogue.
//
// A real value v is stored as the code q = clamp(rint(v * (1 / scale)), -127, 127) (int8; -128
// is never produced, so negation never overflows and the AVX2 sign trick stays exact), and q
// stands for q * scale. Weights have one scale per tensor or one per output row (per channel),
// scale = max|w| / 127 (1 where a row is all zeros); activations have one scale per tensor, from
// the batch itself (dynamic) or fixed beforehand from calibration data (static).
//
// int8_linear computes acc[n][o] = sum_k xq[n][k] * wq[o][k] exactly in int32 (|acc| <= 127^2 K,
// so in_features is limited to kInt8MaxInFeatures; the VNNI kernel's shifted sums wrap around
// modulo 2^32 and the correction brings them back exactly), then y[n][o] = act(float(acc) * m[o] + bias[o]) with
// m[o] = float(x_scale * w_scale[o]) in float32, each operation rounded on its own (no fused
// multiply-add), so the CPU kernels, the CUDA twin and a NumPy reference agree bit for bit.
//
// CPU kernels (chosen at run time, see int8_kernel): AVX-512 VNNI (vpdpbusd on activations shifted
// to unsigned, x + 128, corrected by -128 * the weight row sums), AVX2 (vpmaddubsw on |x| and
// sign(x) * w, then vpmaddwd: no 16-bit saturation, since |x|, |w| <= 127) and a scalar loop.
#include <cstdint>
#include <string>

#include "seisoku/activation.hpp"
#include "seisoku/tensor.hpp"

namespace seisoku {

// The largest code magnitude (codes lie in [-127, 127]).
constexpr int kInt8CodeMax = 127;
// The most inputs an int8 product takes: 127 * 127 * K stays below 2^31.
constexpr std::int64_t kInt8MaxInFeatures = 133143;

// The scale that maps max|x| to 127: max_abs / 127, or 1 when max_abs is 0. max_abs must be finite.
SEISOKU_API float int8_scale_of(double max_abs);

// max |x| over a float32 tensor (CPU or CUDA); std::invalid_argument naming the first NaN or
// infinite element's index otherwise.
SEISOKU_API double int8_max_abs(const Tensor& x, const char* op = "int8_max_abs");

// out (int8, x's shape and device) = clamp(rint(x * (1 / scale)), -127, 127) for float32 x.
// scale must be finite and > 0; NaN elements are an error (infinite ones saturate).
SEISOKU_API void quantize_int8(const Tensor& x, const Tensor& out, double scale);

// Weights (out_features, in_features) as int8 codes with their scales, and the same codes packed
// for the CPU kernels (blocks of 16 output rows x 4 inputs, 64 bytes each, zero padded) with the
// row sums the VNNI kernel subtracts. Prepared once; cheap to share (a handle).
class SEISOKU_API Int8Weight {
 public:
  Int8Weight() = default;
  // Quantizes a float32 or float64 (out, in) tensor (CPU): per output row or per tensor.
  static Int8Weight quantize(const Tensor& weight, bool per_channel);
  // From existing codes (int8 (out, in), CPU) and scales (float32 (out,) or (1,), each > 0).
  static Int8Weight from_codes(const Tensor& codes, const Tensor& scales);

  bool defined() const { return codes_.defined(); }
  std::int64_t out_features() const { return out_; }
  std::int64_t in_features() const { return in_; }
  bool per_channel() const { return scales_.numel() > 1 || out_ == 1; }
  const Tensor& codes() const { return codes_; }    // int8 (out, in), host
  const Tensor& scales() const { return scales_; }  // float32 (out,) or (1,), host
  // The scale of output row o.
  float scale(std::int64_t o) const { return scales_.data_as<float>()[scales_.numel() > 1 ? o : 0]; }
  // Kernel-side data (internal): packed codes, per-row -128 * row sum, and the device copies.
  const Tensor& packed() const { return packed_; }
  const Tensor& row_correction() const { return correction_; }
  std::int64_t in_padded() const { return (in_ + 3) / 4 * 4; }
  // Codes padded to in_padded() columns and the per-row scales (out,), on `device` (made once).
  const Tensor& device_codes(Device device, int device_index) const;
  const Tensor& device_scales(Device device, int device_index) const;
  // Bytes of the codes and scales (what a saved model stores).
  std::int64_t nbytes() const { return codes_.numel() + 4 * scales_.numel(); }

 private:
  void prepare();
  std::int64_t out_ = 0, in_ = 0;
  Tensor codes_, scales_, packed_, correction_;
  mutable Tensor dev_codes_, dev_scales_;
};

// The fused epilogue of int8_linear: y = act(float(acc) * m + bias) (identity or relu), written
// as float32, or, with output_scale > 0, requantized to the int8 codes
// clamp(rint(y * (1 / output_scale)), -127, 127) (quantize_int8's formula): the input of a
// following int8 layer whose static input scale is output_scale, with no float32 pass between.
struct Int8Epilogue {
  Activation activation = Activation::identity;
  double output_scale = 0.0;
};

// y (N, out) = epilogue(xq (N, in) int8 @ weight^T) with the scales above, float32 (int8 when
// epilogue.output_scale > 0); bias float32 (out,) or undefined. xq, bias and y share a device
// (CPU, or CUDA with the weight's device copy).
SEISOKU_API void int8_linear(const Tensor& xq, double x_scale, const Int8Weight& weight, const Tensor& bias,
                             const Tensor& y, const Int8Epilogue& epilogue = {});

// acc (N, out) int32 = xq (N, in) int8 @ wq (out, in) int8 ^T, exactly (the raw product, for tests).
SEISOKU_API void int8_matmul(const Tensor& xq, const Int8Weight& weight, const Tensor& acc);

// The pieces of an int8 convolution around int8_linear (QuantizedConv2d: quantize, im2col, the
// product with its epilogue, then back to NCHW), on the CPU or CUDA:
// cols (int8, (N * Ho * Wo, C * kh * kw), xq's device) = the kh x kw patches of xq (int8,
// (N, C, H, W)): row (n * Ho + oh) * Wo + ow, column (c * kh + i) * kw + j, zero where a patch
// reaches into the padding. Ho = (H + 2 pad_h - kh) / stride_h + 1, Wo likewise.
SEISOKU_API void int8_im2col(const Tensor& xq, const Tensor& cols, std::int64_t kh, std::int64_t kw,
                             std::int64_t stride_h = 1, std::int64_t stride_w = 1, std::int64_t pad_h = 0,
                             std::int64_t pad_w = 0);
// y (float32, (N, O, Ho, Wo)) = rows (float32, (N * Ho * Wo, O), one row per output pixel) with
// each sample's pixels and channels swapped; same device.
SEISOKU_API void int8_rows_to_nchw(const Tensor& rows, const Tensor& y);

// The CPU kernel in use: "avx512_vnni", "avx2" or "scalar". Chosen at the first call from the CPU
// (the best it supports) unless the environment variable SEISOKU_INT8_KERNEL names one the CPU
// can run (another value is ignored) or set_int8_kernel names one (one the CPU lacks is an
// error).
SEISOKU_API std::string int8_kernel();
// "auto", "avx512_vnni", "avx2" or "scalar"; returns the kernel then in use.
SEISOKU_API std::string set_int8_kernel(const std::string& name);
// Whether this CPU can run the kernel of that name.
SEISOKU_API bool int8_kernel_supported(const std::string& name);

// Fake quantization (quantization-aware training): y = clamp(rint(x / s), -127, 127) * s, x and y
// float32 of one shape; scales float32 of 1 element (per tensor) or of x.shape[0] elements (per
// row: axis 0, as a weight's output rows). The straight-through estimator's backward:
// grad_x = grad where |x / s| <= 127.5 (not clipped), 0 where clipped.
SEISOKU_API void fake_quantize_int8(const Tensor& x, const Tensor& scales, const Tensor& y);
SEISOKU_API void fake_quantize_int8_backward(const Tensor& grad, const Tensor& x, const Tensor& scales,
                                             const Tensor& grad_x);

}  // namespace seisoku
