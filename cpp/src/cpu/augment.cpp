// CPU kernels of the augmentation family: the driver. One task per sample (parallel_tasks
// over the batch): the sample runs its stages in order through two thread-local scratch
// images, so a sample's result depends only on its own plan. Geometric stages go to
// augment_geometric.cpp, elastic ones to augment_smooth.cpp (the fields) and
// augment_resample.cpp (the displacement); fill (cutout, erasing) and noise stages are here.
// The per-pixel arithmetic is the shared code of kernels/augment.hpp that the CUDA twin runs
// too.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "augment_cpu.hpp"
#include "core/dispatch.hpp"
#include "normal_lanes.hpp"
#include "parallel.hpp"
#include "philox_lanes.hpp"

#if defined(__SSE__)
#include <immintrin.h>
#endif

namespace seisoku::cpu {
namespace {

using namespace augment_impl;

// Thread-local scratch: two images, the elastic fields of one sample and the noise draws.
struct Scratch {
  std::vector<unsigned char> image[2];
  std::vector<float> field, rows;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

template <class T>
T* scratch_image(int which, std::int64_t values) {
  std::vector<unsigned char>& v = scratch().image[which];
  const std::size_t bytes = static_cast<std::size_t>(values) * sizeof(T);
  if (v.size() < bytes) v.resize(bytes);
  return reinterpret_cast<T*>(v.data());
}

float* scratch_floats(std::vector<float>& v, std::int64_t n) {
  if (v.size() < static_cast<std::size_t>(n)) v.resize(static_cast<std::size_t>(n));
  return v.data();
}

template <class T>
void fill_rects(T* img, const ImageShape& s, const StagePlan& st, const SampleStage& ss, const std::int32_t* rects,
                std::uint64_t seed, std::uint64_t offset) {
  const T fill = store_value<T>(st.fill);
  for (std::int32_t r = 0; r < ss.rect_count; ++r) {
    const std::int32_t* rc = rects + 4 * (ss.rect_begin + r);
    if (!st.random_fill) {  // rows of the box are contiguous runs in either layout
      for (std::int64_t p = 0; p < s.p; ++p)
        for (std::int64_t y = rc[1]; y < rc[3]; ++y) {
          T* row = img + p * s.plane() + (y * s.w + rc[0]) * s.q;
          std::fill(row, row + (rc[2] - rc[0]) * s.q, fill);
        }
      continue;
    }
    for (std::int64_t c = 0; c < s.p * s.q; ++c)
      for (std::int64_t y = rc[1]; y < rc[3]; ++y)
        for (std::int64_t x = rc[0]; x < rc[2]; ++x)
          img[s.offset(c, y, x)] = random_fill_value<T>(seed, offset, st.step, (c * s.h + y) * s.w + x);
  }
}

#if defined(__AVX2__)
// noisy() on 8 RGB uint8 pixels (24 bytes at s, 32 readable) into d: channel c of pixel k
// takes z[c * zstride + k]. `room`: 32 bytes may be stored at d (see store24).
inline void noisy_rgb8(const std::uint8_t* s, std::uint8_t* d, const float* z, std::int64_t zstride, float noise_std,
                       bool room) {
  // Pixels 0-3 in the low lane, 4-7 in the high one, each as R | G << 8 | B << 16.
  __m256i v = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)),
                                          _mm256_setr_epi32(0, 1, 2, 3, 3, 4, 5, 6));
  v = _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1, 0, 1, 2, -1, 3,
                                              4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1));
  const __m256 sd = _mm256_set1_ps(noise_std);
  const __m256i byte = _mm256_set1_epi32(0xff);
  __m256i packed = _mm256_setzero_si256();
  for (int c = 0; c < 3; ++c) {
    const __m256 x = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 8 * c), byte));
    const __m256 y = _mm256_fmadd_ps(_mm256_loadu_ps(z + c * zstride), sd, x);
    packed = _mm256_or_si256(packed, _mm256_slli_epi32(store_bytes8(y), 8 * c));
  }
  store_rgb8(d, packed, room);
}
#endif

template <class T>
void add_noise(const T* src, T* dst, const ImageShape& s, float noise_std, std::int64_t step, std::uint64_t seed,
               std::uint64_t offset) {
  const std::int64_t n = s.size(), hw = s.h * s.w;
  const std::uint64_t first = step_block(step, kPixelBlock0);
  alignas(32) std::uint32_t words[4 * kLanes];
  alignas(32) float z[4 * kLanes];
  if (s.q > 1 && hw % 4 == 0) {  // NHWC: 64 pixels at a time, the draws of each channel
    constexpr std::int64_t kChunk = 4 * kLanes;
    std::vector<float>& zc_store = scratch().rows;
    if (zc_store.size() < static_cast<std::size_t>(kChunk * s.q)) zc_store.resize(static_cast<std::size_t>(kChunk * s.q));
    float* zc = zc_store.data();
    for (std::int64_t p0 = 0; p0 < hw; p0 += kChunk) {
      for (std::int64_t c = 0; c < s.q; ++c) {
        philox_lanes(seed, offset, first + static_cast<std::uint64_t>((c * hw + p0) / 4), words);
        normals_from_words(words, zc + c * kChunk);
      }
      const std::int64_t m = std::min(kChunk, hw - p0);
      const T* sp = src + p0 * s.q;
      T* dp = dst + p0 * s.q;
      if (s.q == 3) {
        std::int64_t k = 0;
#if defined(__AVX2__)
        if constexpr (std::is_same_v<T, std::uint8_t>) {
          // 8 pixels at a time while 32 bytes can be read (and, out of place, written).
          for (; k + 8 <= m && p0 + k + 11 <= hw; k += 8)
            noisy_rgb8(sp + k * 3, dp + k * 3, zc + k, kChunk, noise_std, src != dst);
        }
#endif
        for (; k < m; ++k)
          for (std::int64_t c = 0; c < 3; ++c) dp[k * 3 + c] = noisy(sp[k * 3 + c], zc[c * kChunk + k], noise_std);
      } else {
        for (std::int64_t k = 0; k < m; ++k)
          for (std::int64_t c = 0; c < s.q; ++c) dp[k * s.q + c] = noisy(sp[k * s.q + c], zc[c * kChunk + k], noise_std);
      }
    }
    return;
  }
  for (std::int64_t base = 0; base < n; base += 4 * kLanes) {
    philox_lanes(seed, offset, first + static_cast<std::uint64_t>(base / 4), words);
    normals_from_words(words, z);
    const std::int64_t m = std::min<std::int64_t>(4 * kLanes, n - base);
    if (s.q == 1) {  // logical order is memory order
      for (std::int64_t k = 0; k < m; ++k) dst[base + k] = noisy(src[base + k], z[k], noise_std);
    } else {  // logical element base + k is channel c at pixel yx (hw % 4 != 0 only)
      std::int64_t c = base / hw, yx = base % hw;
      for (std::int64_t k = 0; k < m; ++k) {
        const std::int64_t o = yx * s.q + c;
        dst[o] = noisy(src[o], z[k], noise_std);
        if (++yx == hw) yx = 0, ++c;
      }
    }
  }
}

// dst[0 .. bytes) = src[0 .. bytes) with non-temporal stores from the first 32-byte boundary of
// dst: an output that goes to memory anyway is then not read into the cache first.
inline void stream_copy(void* dst, const void* src, std::size_t bytes) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
#if defined(__AVX2__)
  const std::size_t head = std::min(bytes, (32 - reinterpret_cast<std::uintptr_t>(d) % 32) % 32);
  std::memcpy(d, s, head);
  std::size_t i = head;
  for (; i + 32 <= bytes; i += 32)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
  std::memcpy(d + i, s + i, bytes - i);
#else
  std::memcpy(d, s, bytes);
#endif
}

// stream_out: the batch output is larger than the caches. The sample is then built in a
// thread-local image (cache-resident) and streamed to `out` in one contiguous copy, so the
// output lines are never read from memory before they are written; the caller fences.
template <class T>
void run_sample(const T* x, T* out, const AugmentPlan& plan, std::int64_t n, bool stream_out) {
  T* const final_out = out;
  thread_local std::vector<T> staging;
  const std::size_t out_count = static_cast<std::size_t>(plan.stages.back().out.size());
  if (stream_out) {
    if (staging.size() < out_count) staging.resize(out_count);
    out = staging.data();
  }
  const std::size_t ns = plan.stages.size();
  const std::uint64_t offset = plan.sample_offset + static_cast<std::uint64_t>(n);
  T* bufs[2] = {nullptr, nullptr};
  auto buffer = [&](std::int32_t code) -> T* {
    if (code == kBufX) return const_cast<T*>(x);
    if (code == kBufOut) return out;
    const int k = code == kBufScratch0 ? 0 : 1;
    if (bufs[k] == nullptr) bufs[k] = scratch_image<T>(k, plan.scratch);
    return bufs[k];
  };
  for (std::size_t i = 0; i < ns; ++i) {
    const StagePlan& st = plan.stages[i];
    const SampleStage& ss = plan.samples[static_cast<std::size_t>(n) * ns + i];
    const T* src = buffer(st.src);
    T* dst = buffer(st.dst);
    const std::size_t bytes = static_cast<std::size_t>(st.out.size()) * sizeof(T);
    switch (st.kind) {
      case StageKind::geometric: geometric(src, dst, st, ss); break;
      case StageKind::elastic: {
        if (ss.mode == 0) {
          std::memcpy(dst, src, bytes);
          break;
        }
        float* f = scratch_floats(scratch().field, 2 * st.in.h * st.in.w);
        elastic_field(f, st.in.h, st.in.w, st.alpha, st.smooth, plan.seed, offset, st.step);
        displace_image(src, dst, f, f + st.in.h * st.in.w, st.in, st.interpolation, st.border, st.fill);
        break;
      }
      case StageKind::fill:
        if (src != dst) std::memcpy(dst, src, bytes);
        if (ss.mode != 0) fill_rects(dst, st.in, st, ss, plan.rects.data(), plan.seed, offset);
        break;
      case StageKind::noise:
        if (ss.mode != 0) add_noise(src, dst, st.in, st.std, st.step, plan.seed, offset);
        else if (src != dst) std::memcpy(dst, src, bytes);
        break;
    }
  }
  if (stream_out) stream_copy(final_out, out, out_count * sizeof(T));
}

}  // namespace

void augment(const Tensor& x, const Tensor& out, const AugmentPlan& plan) {
  const std::int64_t in_size = x.numel() / plan.n, out_size = out.numel() / plan.n;
  if (plan.stages.empty()) {
    std::memcpy(out.data(), x.data(), x.nbytes());
    return;
  }
  const std::int64_t cost = std::max(in_size, out_size) * static_cast<std::int64_t>(plan.stages.size()) * 4;
  detail::dispatch_all(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, std::uint8_t>) {
      const T* xs = x.data_as<T>();
      T* os = out.data_as<T>();
      // Batch outputs past half the last-level cache go to memory anyway: stream them.
      const bool stream = out.nbytes() >= (std::size_t{16} << 20);
      parallel_tasks(plan.n, cost, [&](std::int64_t n) {
        run_sample(xs + n * in_size, os + n * out_size, plan, n, stream);
#if defined(__SSE2__)
        if (stream) _mm_sfence();  // this thread's streamed stores land before the op returns
#endif
      });
    }
  });
}

}  // namespace seisoku::cpu
