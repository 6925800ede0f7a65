// Front-ends of the int8 family: validate once, then dispatch to cpu:: or gpu:: (see
// seisoku/int8.hpp). Int8Weight quantizes and packs weights on the host, once.
#include "seisoku/int8.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/check.hpp"
#include "kernels/int8.hpp"

namespace seisoku {
namespace {

std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

void check_scale(const char* op, const char* name, double s) {
  if (!(std::isfinite(s) && s > 0.0))
    detail::fail(op, std::string("argument '") + name + "' must be finite and > 0, got " + num(s));
}

void check_host(const char* op, const char* name, const Tensor& t) {
  if (t.is_cuda()) detail::fail(op, std::string("argument '") + name + "' must be on the CPU, got a CUDA tensor");
}

cpu::Int8Kernel kernel_of(const std::string& name) {
  if (name == "scalar") return cpu::Int8Kernel::scalar;
  if (name == "avx2") return cpu::Int8Kernel::avx2;
  if (name == "avx512_vnni") return cpu::Int8Kernel::avx512_vnni;
  detail::fail("set_int8_kernel",
               "argument 'name' must be 'auto', 'avx512_vnni', 'avx2' or 'scalar', got '" + name + "'");
}

const char* kernel_name(cpu::Int8Kernel k) {
  switch (k) {
    case cpu::Int8Kernel::avx512_vnni: return "avx512_vnni";
    case cpu::Int8Kernel::avx2: return "avx2";
    case cpu::Int8Kernel::scalar: return "scalar";
  }
  return "scalar";
}

// The int8 GEMM's common checks; returns N.
std::int64_t check_gemm_args(const char* op, const Tensor& xq, const Int8Weight& w, const Tensor& out, DType out_dtype) {
  if (!w.defined()) detail::fail(op, "argument 'weight' is an empty Int8Weight");
  if (w.in_features() > kInt8MaxInFeatures)
    detail::fail(op, "argument 'weight' must have at most " + std::to_string(kInt8MaxInFeatures) +
                         " in_features (int32 sums of int8 products), got " + std::to_string(w.in_features()));
  detail::check_defined(op, "xq", xq);
  detail::check_defined(op, "out", out);
  detail::check_dtype(op, "xq", xq, {DType::int8});
  if (xq.dim() != 2 || xq.shape()[1] != w.in_features())
    detail::fail(op, "argument 'xq' must have shape (N, " + std::to_string(w.in_features()) + "), got " +
                         shape_str(xq.shape()));
  detail::check_dtype(op, "out", out, {out_dtype});
  detail::check_shape(op, "out", out, {xq.shape()[0], w.out_features()});
  detail::check_same_device(op, "xq", xq, "out", out);
  detail::check_no_overlap(op, "xq", xq, "out", out);
  return xq.shape()[0];
}

}  // namespace

float int8_scale_of(double max_abs) {
  if (!(max_abs >= 0.0 && std::isfinite(max_abs)))
    detail::fail("int8_scale_of", "argument 'max_abs' must be finite and >= 0, got " + num(max_abs));
  if (max_abs == 0.0) return 1.0f;
  // At least 1e-30, so that 1 / scale stays finite in float32.
  return std::max(static_cast<float>(max_abs / kInt8CodeMax), 1e-30f);
}

double int8_max_abs(const Tensor& x, const char* op) {
  detail::check_defined(op, "x", x);
  detail::check_dtype(op, "x", x, {DType::float32});
  if (x.numel() == 0) return 0.0;
  std::int64_t bad = -1;
  float m = 0.0f;
  if (x.is_cuda()) {
#if defined(SEISOKU_WITH_CUDA)
    m = gpu::int8_max_abs(x, &bad);
#else
    detail::throw_no_cuda();
#endif
  } else {
    m = cpu::int8_max_abs(x, &bad);
  }
  if (bad >= 0)
    detail::fail(op, "argument 'x' must be finite, got a NaN or infinite value at x.flat[" + std::to_string(bad) + "]");
  return m;
}

void quantize_int8(const Tensor& x, const Tensor& out, double scale) {
  const char* op = "quantize_int8";
  detail::check_defined(op, "x", x);
  detail::check_defined(op, "out", out);
  detail::check_dtype(op, "x", x, {DType::float32});
  detail::check_dtype(op, "out", out, {DType::int8});
  detail::check_same_shape(op, "x", x, "out", out);
  detail::check_same_device(op, "x", x, "out", out);
  check_scale(op, "scale", scale);
  if (x.numel() == 0) return;
  const float inv = 1.0f / static_cast<float>(scale);
  std::int64_t bad = -1;
  if (x.is_cuda()) {
#if defined(SEISOKU_WITH_CUDA)
    bad = gpu::quantize_int8(x, out, inv);
#else
    detail::throw_no_cuda();
#endif
  } else {
    bad = cpu::quantize_int8(x, out, inv);
  }
  if (bad >= 0) detail::fail(op, "argument 'x' must not contain NaN, got NaN at x.flat[" + std::to_string(bad) + "]");
}

// ---- Int8Weight ----

Int8Weight Int8Weight::quantize(const Tensor& weight, bool per_channel) {
  const char* op = "Int8Weight";
  detail::check_defined(op, "weight", weight);
  detail::check_dtype(op, "weight", weight, {DType::float32, DType::float64});
  check_host(op, "weight", weight);
  if (weight.dim() != 2 || weight.numel() == 0)
    detail::fail(op, "argument 'weight' must be a non-empty 2-D (out_features, in_features) tensor, got shape " +
                         shape_str(weight.shape()));
  const std::int64_t O = weight.shape()[0], K = weight.shape()[1];
  Tensor w32 = weight;
  if (weight.dtype() == DType::float64) {
    w32 = Tensor::empty(weight.shape(), DType::float32);
    for (std::int64_t i = 0; i < weight.numel(); ++i)
      w32.data_as<float>()[i] = static_cast<float>(weight.data_as<double>()[i]);
  }
  const float* v = w32.data_as<float>();
  for (std::int64_t i = 0; i < w32.numel(); ++i)
    if (!std::isfinite(v[i]))
      detail::fail(op, "argument 'weight' must be finite, got " + num(v[i]) + " at weight.flat[" + std::to_string(i) +
                           "]");
  Int8Weight w;
  w.out_ = O;
  w.in_ = K;
  w.scales_ = Tensor::empty({per_channel ? O : 1}, DType::float32);
  float* s = w.scales_.data_as<float>();
  if (per_channel) {
    for (std::int64_t o = 0; o < O; ++o) {
      float m = 0.0f;
      for (std::int64_t k = 0; k < K; ++k) m = std::max(m, std::fabs(v[o * K + k]));
      s[o] = int8_scale_of(m);
    }
  } else {
    float m = 0.0f;
    for (std::int64_t i = 0; i < O * K; ++i) m = std::max(m, std::fabs(v[i]));
    s[0] = int8_scale_of(m);
  }
  w.codes_ = Tensor::empty({O, K}, DType::int8);
  std::int8_t* c = w.codes_.data_as<std::int8_t>();
  for (std::int64_t o = 0; o < O; ++o) {
    const float inv = 1.0f / s[per_channel ? o : 0];
    for (std::int64_t k = 0; k < K; ++k) c[o * K + k] = detail::int8_code(v[o * K + k], inv);
  }
  w.prepare();
  return w;
}

Int8Weight Int8Weight::from_codes(const Tensor& codes, const Tensor& scales) {
  const char* op = "Int8Weight";
  detail::check_defined(op, "codes", codes);
  detail::check_defined(op, "scales", scales);
  detail::check_dtype(op, "codes", codes, {DType::int8});
  detail::check_dtype(op, "scales", scales, {DType::float32});
  check_host(op, "codes", codes);
  check_host(op, "scales", scales);
  if (codes.dim() != 2 || codes.numel() == 0)
    detail::fail(op, "argument 'codes' must be a non-empty 2-D (out_features, in_features) tensor, got shape " +
                         shape_str(codes.shape()));
  const std::int64_t O = codes.shape()[0];
  if (scales.dim() != 1 || (scales.numel() != 1 && scales.numel() != O))
    detail::fail(op, "argument 'scales' must have shape (1,) or (" + std::to_string(O) + ",), got " +
                         shape_str(scales.shape()));
  for (std::int64_t i = 0; i < scales.numel(); ++i) {
    const float s = scales.data_as<float>()[i];
    if (!(std::isfinite(s) && s > 0.0f))
      detail::fail(op, "argument 'scales' must be finite and > 0, got " + num(s) + " at index " + std::to_string(i));
  }
  for (std::int64_t i = 0; i < codes.numel(); ++i)
    if (codes.data_as<std::int8_t>()[i] == -128)
      detail::fail(op, "argument 'codes' must lie in [-127, 127], got -128 at codes.flat[" + std::to_string(i) + "]");
  Int8Weight w;
  w.out_ = O;
  w.in_ = codes.shape()[1];
  w.codes_ = codes.to(Device::cpu);
  w.scales_ = scales.to(Device::cpu);
  w.prepare();
  return w;
}

void Int8Weight::prepare() {
  const std::int64_t OB = (out_ + 15) / 16, G = in_padded() / 4;
  packed_ = Tensor::zeros({OB * G * 64}, DType::int8);
  correction_ = Tensor::zeros({OB * 16}, DType::int32);
  const std::int8_t* c = codes_.data_as<std::int8_t>();
  std::int8_t* p = packed_.data_as<std::int8_t>();
  std::int32_t* corr = correction_.data_as<std::int32_t>();
  for (std::int64_t o = 0; o < out_; ++o) {
    const std::int64_t b = o / 16, j = o % 16;
    std::int32_t sum = 0;
    for (std::int64_t k = 0; k < in_; ++k) {
      p[(b * G + k / 4) * 64 + j * 4 + k % 4] = c[o * in_ + k];
      sum += c[o * in_ + k];
    }
    corr[o] = -128 * sum;
  }
  dev_codes_ = Tensor();
  dev_scales_ = Tensor();
}

const Tensor& Int8Weight::device_codes(Device device, int device_index) const {
  if (device == Device::cpu) return codes_;
  if (!dev_codes_.defined() || dev_codes_.device_index() != device_index) {
    const std::int64_t Kp = in_padded();
    Tensor host = Tensor::zeros({out_, Kp}, DType::int8);
    for (std::int64_t o = 0; o < out_; ++o)
      for (std::int64_t k = 0; k < in_; ++k)
        host.data_as<std::int8_t>()[o * Kp + k] = codes_.data_as<std::int8_t>()[o * in_ + k];
    dev_codes_ = host.to(device, device_index);
  }
  return dev_codes_;
}

const Tensor& Int8Weight::device_scales(Device device, int device_index) const {
  if (device == Device::cpu) return scales_;
  if (!dev_scales_.defined() || dev_scales_.device_index() != device_index) {
    Tensor host = Tensor::empty({out_}, DType::float32);
    for (std::int64_t o = 0; o < out_; ++o) host.data_as<float>()[o] = scale(o);
    dev_scales_ = host.to(device, device_index);
  }
  return dev_scales_;
}

// ---- products ----

void int8_linear(const Tensor& xq, double x_scale, const Int8Weight& weight, const Tensor& bias, const Tensor& y,
                 const Int8Epilogue& epilogue) {
  const char* op = "int8_linear";
  const bool requantize = epilogue.output_scale != 0.0;
  if (requantize) check_scale(op, "output_scale", epilogue.output_scale);
  const std::int64_t N = check_gemm_args(op, xq, weight, y, requantize ? DType::int8 : DType::float32);
  check_scale(op, "x_scale", x_scale);
  if (epilogue.activation != Activation::identity && epilogue.activation != Activation::relu)
    detail::fail(op, std::string("argument 'activation' must be identity or relu, got ") +
                         activation_name(epilogue.activation));
  if (bias.defined()) {
    detail::check_dtype(op, "bias", bias, {DType::float32});
    detail::check_shape(op, "bias", bias, {weight.out_features()});
    detail::check_same_device(op, "bias", bias, "y", y);
  }
  if (N == 0) return;
  const bool relu = epilogue.activation == Activation::relu;
  const float out_inv = requantize ? 1.0f / static_cast<float>(epilogue.output_scale) : 0.0f;
  SEISOKU_DISPATCH(xq, int8_gemm, xq, static_cast<float>(x_scale), weight, bias, y, relu, false, out_inv);
}

void int8_matmul(const Tensor& xq, const Int8Weight& weight, const Tensor& acc) {
  const std::int64_t N = check_gemm_args("int8_matmul", xq, weight, acc, DType::int32);
  if (N == 0) return;
  SEISOKU_DISPATCH(xq, int8_gemm, xq, 1.0f, weight, Tensor(), acc, false, true, 0.0f);
}

// ---- kernel choice ----

std::string int8_kernel() { return kernel_name(cpu::int8_kernel_current()); }

bool int8_kernel_supported(const std::string& name) {
  if (name == "auto") return true;
  return cpu::int8_kernel_supported(kernel_of(name));
}

std::string set_int8_kernel(const std::string& name) {
  cpu::Int8Kernel k = cpu::int8_kernel_supported(cpu::Int8Kernel::avx512_vnni) ? cpu::Int8Kernel::avx512_vnni
                      : cpu::int8_kernel_supported(cpu::Int8Kernel::avx2)      ? cpu::Int8Kernel::avx2
                                                                               : cpu::Int8Kernel::scalar;
  if (name != "auto") {
    k = kernel_of(name);
    if (!cpu::int8_kernel_supported(k))
      detail::fail("set_int8_kernel", "argument 'name' names a kernel this CPU cannot run, got '" + name + "'");
  }
  cpu::int8_kernel_set(k);
  return kernel_name(k);
}

// ---- fake quantization ----

namespace {
void check_fake(const char* op, const Tensor& x, const Tensor& scales, const Tensor& out, const char* out_name) {
  detail::check_defined(op, "x", x);
  detail::check_defined(op, "scales", scales);
  detail::check_defined(op, out_name, out);
  detail::check_dtype(op, "x", x, {DType::float32});
  detail::check_dtype(op, "scales", scales, {DType::float32});
  detail::check_dtype(op, out_name, out, {DType::float32});
  detail::check_same_shape(op, "x", x, out_name, out);
  detail::check_same_device(op, "x", x, out_name, out);
  detail::check_same_device(op, "x", x, "scales", scales);
  const std::int64_t rows = x.dim() >= 1 ? x.shape()[0] : 1;
  if (scales.numel() != 1 && scales.numel() != rows)
    detail::fail(op, "argument 'scales' must have 1 or x.shape[0] = " + std::to_string(rows) +
                         " elements, got shape " + shape_str(scales.shape()));
  const Tensor host = scales.is_cuda() ? scales.to(Device::cpu) : scales;
  for (std::int64_t i = 0; i < host.numel(); ++i) check_scale(op, "scales", host.data_as<float>()[i]);
}
}  // namespace

void int8_im2col(const Tensor& xq, const Tensor& cols, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                 std::int64_t stride_w, std::int64_t pad_h, std::int64_t pad_w) {
  const char* op = "int8_im2col";
  detail::check_defined(op, "xq", xq);
  detail::check_defined(op, "cols", cols);
  detail::check_dtype(op, "xq", xq, {DType::int8});
  detail::check_dtype(op, "cols", cols, {DType::int8});
  detail::check_same_device(op, "xq", xq, "cols", cols);
  if (xq.dim() != 4) detail::fail(op, "argument 'xq' must have shape (N, C, H, W), got " + shape_str(xq.shape()));
  if (kh < 1 || kw < 1 || stride_h < 1 || stride_w < 1 || pad_h < 0 || pad_w < 0)
    detail::fail(op, "the window must have kh, kw, stride_h, stride_w >= 1 and pad_h, pad_w >= 0, got kh=" +
                         std::to_string(kh) + " kw=" + std::to_string(kw) + " stride=(" + std::to_string(stride_h) +
                         ", " + std::to_string(stride_w) + ") pad=(" + std::to_string(pad_h) + ", " +
                         std::to_string(pad_w) + ")");
  ConvGeometry g{};
  g.n = xq.shape()[0], g.c = xq.shape()[1], g.h = xq.shape()[2], g.w = xq.shape()[3];
  g.kh = kh, g.kw = kw, g.sh = stride_h, g.sw = stride_w, g.ph = pad_h, g.pw = pad_w;
  if (g.h + 2 * pad_h < kh || g.w + 2 * pad_w < kw)
    detail::fail(op, "argument 'xq' of shape " + shape_str(xq.shape()) + " is smaller than the " +
                         std::to_string(kh) + "x" + std::to_string(kw) + " window with its padding");
  g.ho = (g.h + 2 * pad_h - kh) / stride_h + 1;
  g.wo = (g.w + 2 * pad_w - kw) / stride_w + 1;
  const std::vector<std::int64_t> want{g.n * g.l(), g.k()};
  if (cols.shape() != want)
    detail::fail(op, "argument 'cols' must have shape " + shape_str(want) + ", got " + shape_str(cols.shape()));
  if (cols.numel() == 0) return;
  SEISOKU_DISPATCH(xq, int8_im2col, xq, cols, g);
}

void int8_rows_to_nchw(const Tensor& rows, const Tensor& y) {
  const char* op = "int8_rows_to_nchw";
  detail::check_defined(op, "rows", rows);
  detail::check_defined(op, "y", y);
  detail::check_dtype(op, "rows", rows, {DType::float32});
  detail::check_dtype(op, "y", y, {DType::float32});
  detail::check_same_device(op, "rows", rows, "y", y);
  if (y.dim() != 4) detail::fail(op, "argument 'y' must have shape (N, O, Ho, Wo), got " + shape_str(y.shape()));
  const std::vector<std::int64_t> want{y.shape()[0] * y.shape()[2] * y.shape()[3], y.shape()[1]};
  if (rows.shape() != want)
    detail::fail(op, "argument 'rows' must have shape " + shape_str(want) + " for y of shape " +
                         shape_str(y.shape()) + ", got " + shape_str(rows.shape()));
  if (y.numel() == 0) return;
  SEISOKU_DISPATCH(y, int8_rows_to_nchw, rows, y);
}

void fake_quantize_int8(const Tensor& x, const Tensor& scales, const Tensor& y) {
  check_fake("fake_quantize_int8", x, scales, y, "y");
  if (x.numel() == 0) return;
  SEISOKU_DISPATCH(x, fake_quantize_int8, x, scales, y);
}

void fake_quantize_int8_backward(const Tensor& grad, const Tensor& x, const Tensor& scales, const Tensor& grad_x) {
  const char* op = "fake_quantize_int8_backward";
  check_fake(op, x, scales, grad_x, "grad_x");
  detail::check_defined(op, "grad", grad);
  detail::check_dtype(op, "grad", grad, {DType::float32});
  detail::check_same_shape(op, "grad", grad, "x", x);
  detail::check_same_device(op, "grad", grad, "x", x);
  if (x.numel() == 0) return;
  SEISOKU_DISPATCH(x, fake_quantize_int8_backward, grad, x, scales, grad_x);
}

}  // namespace seisoku
