#pragma once
// seisoku::nn: layers, models, losses and an optimizer for C++ training loops. The Python classes
// of seisoku.nn are these classes bound with pybind11; parameter.hpp states the gradient rule both
// languages share.
#include "seisoku/nn/containers.hpp"
#include "seisoku/nn/layers.hpp"
#include "seisoku/nn/loss.hpp"
#include "seisoku/nn/module.hpp"
#include "seisoku/nn/optimizer.hpp"
#include "seisoku/nn/parameter.hpp"
#include "seisoku/nn/quantized.hpp"
#include "seisoku/nn/sparse_linear.hpp"
