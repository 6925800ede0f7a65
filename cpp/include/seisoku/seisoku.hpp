#pragma once
// The whole C++ API of seisoku.
#include "seisoku/blas.hpp"
#include "seisoku/conv.hpp"
#include "seisoku/dtype.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/pool.hpp"
#include "seisoku/random.hpp"
#include "seisoku/reduce.hpp"
#include "seisoku/runtime.hpp"
#include "seisoku/tensor.hpp"
