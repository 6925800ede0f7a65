"""Functional forms of the layers, convolution, pooling and losses: each call runs one native
op on NumPy (CPU) or CuPy (GPU) arrays.

These are the native functions themselves (seisoku._core), whose C++ front-ends make every check
of shapes, dtypes, devices and ranges: a bad argument is a ValueError "[op] ...". Arrays are used
zero-copy and must be C-contiguous; outputs are new arrays on the inputs' device unless `out`
(or grad_x, grad_weight, ...) names one. Stochastic ops take the Philox stream (seed, offset)
explicitly, so a backward pass draws the same mask again.
"""

from __future__ import annotations

from .. import _core
from ._loss import (
    CONVENTIONS,
    LossResult,
    bce_with_logits,
    cross_entropy,
    kl_div_softened,
    mse_loss,
)

#: The activation names the layers and ops accept (None means 'identity').
ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid")

activation = _core.activation
activation_backward = _core.activation_backward
softmax = _core.softmax
softmax_backward = _core.softmax_backward
dropout = _core.dropout
gaussian_noise = _core.gaussian_noise
linear = _core.linear
bias_act_dropout = _core.bias_act_dropout
bias_act_dropout_backward = _core.bias_act_dropout_backward
linear_backward = _core.linear_backward
dropconnect_gaussian = _core.dropconnect_gaussian
activity_penalty = _core.activity_penalty
tying_penalty = _core.tying_penalty
conv2d = _core.conv2d
conv2d_backward = _core.conv2d_backward
conv2d_shape = _core.conv2d_shape
max_pool2d = _core.max_pool2d
max_pool2d_backward = _core.max_pool2d_backward
avg_pool2d = _core.avg_pool2d
avg_pool2d_backward = _core.avg_pool2d_backward
pool2d_shape = _core.pool2d_shape

__all__ = [
    "ACTIVATIONS",
    "CONVENTIONS",
    "LossResult",
    "activation",
    "activation_backward",
    "activity_penalty",
    "avg_pool2d",
    "avg_pool2d_backward",
    "bce_with_logits",
    "bias_act_dropout",
    "bias_act_dropout_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_shape",
    "cross_entropy",
    "dropconnect_gaussian",
    "dropout",
    "gaussian_noise",
    "kl_div_softened",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "mse_loss",
    "pool2d_shape",
    "softmax",
    "softmax_backward",
    "tying_penalty",
]
