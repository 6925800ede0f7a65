#pragma once
// Symmetric int8 math shared by the CPU kernels (cpp/src/cpu/int8.cpp) and their CUDA twins
// (cuda/int8.cu), one formula per step on both devices (see seisoku/int8.hpp). Every float
// operation is a separate float32 rounding (the files build without contraction into fma).
#include <cstdint>

#include "seisoku/export.hpp"

namespace seisoku::detail {

SEISOKU_HD float int8_rint(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  return __builtin_rintf(v);
#endif
}

// The code of v: rint(v * inv_scale) clamped to [-127, 127] (ties to even; inf saturates).
SEISOKU_HD std::int8_t int8_code(float v, float inv_scale) {
  float r = int8_rint(v * inv_scale);
  r = r < -127.0f ? -127.0f : (r > 127.0f ? 127.0f : r);
  return static_cast<std::int8_t>(static_cast<int>(r));
}

// Whether v * inv_scale rounds inside [-127, 127] (the straight-through estimator passes there).
SEISOKU_HD bool int8_in_range(float v, float inv_scale) {
  const float r = int8_rint(v * inv_scale);
  return r >= -127.0f && r <= 127.0f;
}

// The epilogue of one output: act(float(acc) * m + b), m = x_scale * w_scale (float32).
SEISOKU_HD float int8_epilogue(std::int32_t acc, float m, float b, bool relu) {
  const float p = static_cast<float>(acc) * m;
  const float y = p + b;
  return relu && !(y > 0.0f) ? 0.0f : y;
}

}  // namespace seisoku::detail
