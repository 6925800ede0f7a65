#pragma once
// One export macro for every public symbol; everything else is hidden.
#if defined(_WIN32)
#  if defined(SEISOKU_BUILDING)
#    define SEISOKU_API __declspec(dllexport)
#  else
#    define SEISOKU_API __declspec(dllimport)
#  endif
#else
#  define SEISOKU_API __attribute__((visibility("default")))
#endif

// Functions that compile for host and device (philox.hpp, dtype.hpp conversions).
#if defined(__CUDACC__)
#  define SEISOKU_HD __host__ __device__ __forceinline__
#else
#  define SEISOKU_HD inline
#endif
