// CUDA twins of the augmentation family (cpp/src/cpu/augment*.cpp). The host plan (stages and
// every sample's parameters, cpp/src/ops/augment_plan.cpp) is copied to the device once per call;
// then each stage runs over the whole batch:
//   geometric, elastic resampling: one thread per output pixel (all channels), through the
//     per-pixel code of kernels/augment.hpp the CPU runs too;
//   fill (cutout, erasing): one thread per pixel, after a copy of the batch when the stage
//     does not work in place; noise: one thread per Philox block of 4 values;
//   elastic fields: one thread per Philox block to draw them (in the transposed layout the
//     CPU uses), one thread per line for each smoothing pass (smooth_line: the same
//     operations as the CPU's column blocks; the recursive filter's causal sums go to a
//     scratch buffer of doubles), a transpose between the passes.
// Scratch images and fields come from cudaMallocAsync on the current stream.
// Launch shape: kThreads threads per block, grid-stride loops (grid_for).
#include <cstdint>
#include <cstring>

#include "cuda_util.hpp"
#include "core/dispatch.hpp"
#include "kernels/augment.hpp"

namespace seisoku::gpu {
namespace {

#define SEISOKU_GRID_STRIDE(i, n) \
  for (std::int64_t i = blockIdx.x * std::int64_t{blockDim.x} + threadIdx.x; i < (n); i += std::int64_t{gridDim.x} * blockDim.x)

// Device memory of one call, freed on the stream when it goes out of scope.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) {
    if (bytes > 0) SEISOKU_CUDA_CHECK(cudaMallocAsync(&p_, bytes, stream()));
  }
  ~DeviceBuffer() {
    if (p_ != nullptr) cudaFreeAsync(p_, stream());
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
};

template <class T>
void upload(DeviceBuffer& dst, const T* src, std::size_t count) {
  if (count > 0)
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(dst.as<void>(), src, count * sizeof(T), cudaMemcpyHostToDevice, stream()));
}

// Mode of sample s in stage si, or 1 (apply) without a plan.
__device__ __forceinline__ std::int32_t sample_mode(const SampleStage* ss, std::int64_t s, std::int64_t ns,
                                                    std::int64_t si) {
  return ss == nullptr ? 1 : ss[s * ns + si].mode;
}

template <class T>
__global__ void geometric_kernel(const T* src, T* dst, StagePlan st, const SampleStage* samples, std::int64_t n,
                                 std::int64_t ns, std::int64_t si) {
  const std::int64_t hw = st.out.h * st.out.w;
  SEISOKU_GRID_STRIDE(idx, n * hw) {
    const std::int64_t s = idx / hw, x = idx % st.out.w, y = (idx / st.out.w) % st.out.h;
    geometric_pixel(src + s * st.in.size(), dst + s * st.out.size(), st, samples[s * ns + si], y, x);
  }
}

template <class T>
__global__ void fill_kernel(T* img, StagePlan st, const SampleStage* samples, const std::int32_t* rects,
                            std::int64_t n, std::int64_t ns, std::int64_t si, std::uint64_t seed,
                            std::uint64_t sample_offset) {
  const ImageShape s = st.in;
  const std::int64_t hw = s.h * s.w;
  const T fill = store_value<T>(st.fill);
  SEISOKU_GRID_STRIDE(idx, n * hw) {
    const std::int64_t i = idx / hw, x = idx % s.w, y = (idx / s.w) % s.h;
    const SampleStage ss = samples[i * ns + si];
    if (ss.mode == 0) continue;
    bool inside = false;
    for (std::int32_t r = 0; r < ss.rect_count; ++r) {
      const std::int32_t* rc = rects + 4 * (ss.rect_begin + r);
      inside = inside || (x >= rc[0] && x < rc[2] && y >= rc[1] && y < rc[3]);
    }
    if (!inside) continue;
    T* im = img + i * s.size();
    const std::uint64_t offset = sample_offset + static_cast<std::uint64_t>(i);
    for (std::int64_t c = 0; c < s.p * s.q; ++c)
      im[s.offset(c, y, x)] =
          st.random_fill ? random_fill_value<T>(seed, offset, st.step, (c * s.h + y) * s.w + x) : fill;
  }
}

template <class T>
__global__ void noise_kernel(T* img, StagePlan st, const SampleStage* samples, std::int64_t n, std::int64_t ns,
                             std::int64_t si, std::uint64_t seed, std::uint64_t sample_offset) {
  const ImageShape s = st.in;
  const std::int64_t size = s.size(), hw = s.h * s.w, blocks = (size + 3) / 4;
  SEISOKU_GRID_STRIDE(idx, n * blocks) {
    const std::int64_t i = idx / blocks, b = idx % blocks;
    if (samples[i * ns + si].mode == 0) continue;
    const philox::Block r = philox::draw(seed, sample_offset + static_cast<std::uint64_t>(i),
                                         step_block(st.step, kPixelBlock0 + static_cast<std::uint64_t>(b)));
    float z[4];
    block_normals(r, z);
    T* im = img + i * size;
    for (int k = 0; k < 4; ++k) {
      const std::int64_t e = 4 * b + k;
      if (e >= size) break;
      const std::int64_t o = s.q == 1 ? e : (e % hw) * s.q + e / hw;
      im[o] = noisy(im[o], z[k], st.std);
    }
  }
}

// Uniform [-1, 1) fields of n samples, 2 h w words each, in draw order.
__global__ void field_draw_kernel(float* ft, std::int64_t n, std::int64_t hw, const SampleStage* samples,
                                  std::int64_t ns, std::int64_t si, std::uint64_t seed, std::uint64_t sample_offset,
                                  std::int64_t step) {
  const std::int64_t words = 2 * hw, blocks = (words + 3) / 4;
  SEISOKU_GRID_STRIDE(idx, n * blocks) {
    const std::int64_t i = idx / blocks, b = idx % blocks;
    if (sample_mode(samples, i, ns, si) == 0) continue;
    const philox::Block r = philox::draw(seed, sample_offset + static_cast<std::uint64_t>(i),
                                         step_block(step, kPixelBlock0 + static_cast<std::uint64_t>(b)));
    for (int k = 0; k < 4; ++k)
      if (4 * b + k < words) ft[i * words + 4 * b + k] = signed_unit(r.v[k]);
  }
}

// dst = scale * src smoothed along `lines` lines per plane (plane = 2 fields x n samples, or
// one plane of gaussian_smooth) of `len` values `stride` apart; line j of a plane starts at j.
// work: the recursive filter's causal sums, indexed like src.
__global__ void smooth_kernel(const float* src, float* dst, double* work, std::int64_t planes,
                              std::int64_t plane_size, std::int64_t lines, std::int64_t len, std::int64_t stride,
                              SmoothCoef coef, float scale, const SampleStage* samples, std::int64_t ns,
                              std::int64_t si, std::int64_t planes_per_sample) {
  SEISOKU_GRID_STRIDE(idx, planes * lines) {
    const std::int64_t plane = idx / lines, j = idx % lines;
    if (sample_mode(samples, plane / planes_per_sample, ns, si) == 0) continue;
    const std::int64_t at = plane * plane_size + j;
    smooth_line(src + at, dst + at, work + at, len, stride, coef, scale);
  }
}

// f (planes of h x w) = transpose of ft (planes of w x h).
__global__ void transpose_kernel(const float* ft, float* f, std::int64_t planes, std::int64_t h, std::int64_t w) {
  SEISOKU_GRID_STRIDE(idx, planes * h * w) {
    const std::int64_t p = idx / (h * w), y = (idx / w) % h, x = idx % w;
    f[idx] = ft[p * h * w + x * h + y];
  }
}

template <class T>
__global__ void displace_kernel(const T* src, T* dst, const float* disp, ImageShape img, Interpolation interpolation, Border border,
                                float fill, std::int64_t n, const SampleStage* samples, std::int64_t ns,
                                std::int64_t si) {
  const std::int64_t hw = img.h * img.w;
  SEISOKU_GRID_STRIDE(idx, n * hw) {
    const std::int64_t i = idx / hw, x = idx % img.w, y = (idx / img.w) % img.h;
    const T* s = src + i * img.size();
    T* d = dst + i * img.size();
    if (sample_mode(samples, i, ns, si) == 0) {
      resample_pixel<1>(s, d, img, img, y, x, static_cast<float>(x), static_cast<float>(y), border, fill);
    } else {
      const float* dx = disp + i * 2 * hw;
      displace_pixel(s, d, dx, dx + hw, img, interpolation, border, fill, y, x);
    }
  }
}

// f = scale * the `planes` planes h x w held transposed in ft (w x h each) smoothed along x,
// then along y: the CPU's smooth_transposed, pass by pass (ft is overwritten). tmp: planes of
// floats, work: planes of doubles. planes_per_sample: 2 for elastic fields (the plan's sample
// modes skip the samples a step leaves alone), 1 otherwise.
void smooth_planes(float* ft, float* f, float* tmp, double* work, std::int64_t planes, std::int64_t h, std::int64_t w,
                   const SmoothCoef& coef, float scale, const SampleStage* samples, std::int64_t ns, std::int64_t si,
                   std::int64_t planes_per_sample) {
  const std::int64_t hw = h * w;
  smooth_kernel<<<grid_for(planes * h), kThreads, 0, stream()>>>(ft, tmp, work, planes, hw, h, w, h, coef, 1.0f,
                                                                  samples, ns, si, planes_per_sample);
  transpose_kernel<<<grid_for(planes * hw), kThreads, 0, stream()>>>(tmp, ft, planes, h, w);
  smooth_kernel<<<grid_for(planes * w), kThreads, 0, stream()>>>(ft, f, work, planes, hw, w, h, w, coef, scale,
                                                                  samples, ns, si, planes_per_sample);
  check_launch();
}

template <class T>
void run_plan(const T* x, T* out, const AugmentPlan& plan) {
  const std::int64_t n = plan.n, ns = static_cast<std::int64_t>(plan.stages.size());
  DeviceBuffer samples(plan.samples.size() * sizeof(SampleStage));
  DeviceBuffer rects(plan.rects.size() * sizeof(std::int32_t));
  upload(samples, plan.samples.data(), plan.samples.size());
  upload(rects, plan.rects.data(), plan.rects.size());
  const std::size_t scratch_bytes = static_cast<std::size_t>(n * plan.scratch) * sizeof(T);
  DeviceBuffer s0(scratch_bytes), s1(scratch_bytes);
  std::int64_t field_values = 0;
  for (const StagePlan& st : plan.stages)
    if (st.kind == StageKind::elastic) field_values = std::max(field_values, 2 * n * st.in.h * st.in.w);
  const std::size_t field_bytes = static_cast<std::size_t>(field_values) * sizeof(float);
  DeviceBuffer ft(field_bytes), f(field_bytes), tmp(field_bytes), work(2 * field_bytes);
  auto buffer = [&](std::int32_t code) -> T* {
    if (code == kBufX) return const_cast<T*>(x);
    if (code == kBufOut) return out;
    return code == kBufScratch0 ? s0.as<T>() : s1.as<T>();
  };
  const SampleStage* ss = samples.as<SampleStage>();
  for (std::int64_t si = 0; si < ns; ++si) {
    const StagePlan& st = plan.stages[static_cast<std::size_t>(si)];
    const T* src = buffer(st.src);
    T* dst = buffer(st.dst);
    const std::size_t bytes = static_cast<std::size_t>(n * st.out.size()) * sizeof(T);
    switch (st.kind) {
      case StageKind::geometric:
        geometric_kernel<<<grid_for(n * st.out.h * st.out.w), kThreads, 0, stream()>>>(src, dst, st, ss, n, ns, si);
        break;
      case StageKind::elastic:
        field_draw_kernel<<<grid_for(n * ((2 * st.in.h * st.in.w + 3) / 4)), kThreads, 0, stream()>>>(
            ft.as<float>(), n, st.in.h * st.in.w, ss, ns, si, plan.seed, plan.sample_offset, st.step);
        smooth_planes(ft.as<float>(), f.as<float>(), tmp.as<float>(), work.as<double>(), 2 * n, st.in.h, st.in.w,
                      st.smooth, st.alpha, ss, ns, si, 2);
        displace_kernel<<<grid_for(n * st.in.h * st.in.w), kThreads, 0, stream()>>>(
            src, dst, f.as<float>(), st.in, st.interpolation, st.border, st.fill, n, ss, ns, si);
        break;
      case StageKind::fill:
        if (src != dst) SEISOKU_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
        fill_kernel<<<grid_for(n * st.in.h * st.in.w), kThreads, 0, stream()>>>(
            dst, st, ss, rects.as<std::int32_t>(), n, ns, si, plan.seed, plan.sample_offset);
        break;
      case StageKind::noise:
        if (src != dst) SEISOKU_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream()));
        noise_kernel<<<grid_for(n * ((st.in.size() + 3) / 4)), kThreads, 0, stream()>>>(dst, st, ss, n, ns, si,
                                                                                      plan.seed, plan.sample_offset);
        break;
    }
    check_launch();
  }
}

#undef SEISOKU_GRID_STRIDE

}  // namespace

void augment(const Tensor& x, const Tensor& out, const AugmentPlan& plan) {
  DeviceGuard guard(x.device_index());
  if (plan.stages.empty()) {
    SEISOKU_CUDA_CHECK(cudaMemcpyAsync(out.data(), x.data(), x.nbytes(), cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  if (x.dtype() == DType::uint8) run_plan(x.data_as<std::uint8_t>(), out.data_as<std::uint8_t>(), plan);
  else run_plan(x.data_as<float>(), out.data_as<float>(), plan);
}

void gaussian_smooth(const Tensor& x, const Tensor& out, const SmoothCoef& coef) {
  DeviceGuard guard(x.device_index());
  const std::int64_t planes = x.size(0), h = x.size(1), w = x.size(2);
  DeviceBuffer ft(x.nbytes()), tmp(x.nbytes()), work(2 * x.nbytes());
  // ft = transpose of x (each plane w x h).
  transpose_kernel<<<grid_for(planes * h * w), kThreads, 0, stream()>>>(x.data_as<float>(), ft.as<float>(), planes, w,
                                                                       h);
  smooth_planes(ft.as<float>(), out.data_as<float>(), tmp.as<float>(), work.as<double>(), planes, h, w, coef, 1.0f,
                nullptr, 1, 0, 1);
}

void elastic_displacement(const Tensor& out, float alpha, const SmoothCoef& coef, std::uint64_t seed,
                          std::uint64_t sample_offset, std::int64_t step_index) {
  DeviceGuard guard(out.device_index());
  const std::int64_t n = out.size(0), h = out.size(2), w = out.size(3);
  DeviceBuffer ft(out.nbytes()), tmp(out.nbytes()), work(2 * out.nbytes());
  field_draw_kernel<<<grid_for(n * ((2 * h * w + 3) / 4)), kThreads, 0, stream()>>>(
      ft.as<float>(), n, h * w, nullptr, 1, 0, seed, sample_offset, step_index);
  smooth_planes(ft.as<float>(), out.data_as<float>(), tmp.as<float>(), work.as<double>(), 2 * n, h, w, coef, alpha,
                nullptr, 1, 0, 2);
}

void displace(const Tensor& x, const Tensor& disp, const Tensor& out, const ImageShape& img, Interpolation interpolation,
              Border border, float fill) {
  DeviceGuard guard(x.device_index());
  const std::int64_t n = x.size(0);
  const unsigned blocks = grid_for(n * img.h * img.w);
  if (x.dtype() == DType::uint8)
    displace_kernel<<<blocks, kThreads, 0, stream()>>>(x.data_as<std::uint8_t>(), out.data_as<std::uint8_t>(),
                                                        disp.data_as<float>(), img, interpolation, border, fill, n, nullptr,
                                                        1, 0);
  else
    displace_kernel<<<blocks, kThreads, 0, stream()>>>(x.data_as<float>(), out.data_as<float>(), disp.data_as<float>(),
                                                        img, interpolation, border, fill, n, nullptr, 1, 0);
  check_launch();
}

}  // namespace seisoku::gpu
