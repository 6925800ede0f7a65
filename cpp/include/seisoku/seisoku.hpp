#pragma once
// The whole C++ API of seisoku.
#include "seisoku/activation.hpp"
#include "seisoku/blas.hpp"
#include "seisoku/dtype.hpp"
#include "seisoku/elementwise.hpp"
#include "seisoku/linear.hpp"
#include "seisoku/mask.hpp"
#include "seisoku/penalty.hpp"
#include "seisoku/loss.hpp"
#include "seisoku/random.hpp"
#include "seisoku/reduce.hpp"
#include "seisoku/runtime.hpp"
#include "seisoku/tensor.hpp"
