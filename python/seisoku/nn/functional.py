"""Functional forms of the layers, pooling, convolution and losses: each call runs one
native op on NumPy or CuPy arrays.

Outputs are allocated on the inputs' device unless given. Stochastic ops take the Philox
stream (seed, offset) explicitly, so a backward pass can draw the same mask again.
"""

from __future__ import annotations

from typing import Any

from .. import _core
from .._array import array_module, require_array
from ..random import _check_u64
from ._conv import conv2d, conv2d_backward, conv2d_shape
from ._loss import LossResult, bce_with_logits, cross_entropy, kl_div_softened, mse_loss
from ._pool import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward, pool2d_shape

Array = Any

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid")


def _like(x: Array, out: Array | None) -> Array:
    return array_module(x).empty_like(x) if out is None else out


def check_activation(name: str | None) -> str:
    """The activation's canonical name ('identity' for None); ValueError for unknown names."""
    name = "identity" if name is None else name
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {', '.join(ACTIVATIONS)} or None, got {name!r}"
        )
    return name


def check_probability(p: float, name: str = "p", op: str = "dropout") -> float:
    """p as a float in [0, 1); ValueError naming the op and the argument otherwise."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"[{op}] {name} must be a number in [0, 1), got {p!r}")
    return float(p)


def _stream(seed: int, offset: int, op: str) -> tuple[int, int]:
    try:
        return _check_u64(seed, "seed"), _check_u64(offset, "offset")
    except ValueError as e:
        raise ValueError(f"[{op}] {e}") from None


def activation(x: Array, name: str, slope: float = 0.01, out: Array | None = None) -> Array:
    """Apply an activation ('relu', 'leaky_relu', 'tanh', 'sigmoid', 'identity')."""
    require_array(x, "x", "activation")
    out = _like(x, out)
    _core.activation(x, out, check_activation(name), float(slope))
    return out


def activation_backward(
    grad_out: Array, y: Array, name: str, slope: float = 0.01, out: Array | None = None
) -> Array:
    """Gradient through an activation, from its output y."""
    require_array(y, "y", "activation_backward")
    out = _like(y, out)
    _core.activation_backward(grad_out, y, out, check_activation(name), float(slope))
    return out


def softmax(x: Array, out: Array | None = None) -> Array:
    """Softmax over the last axis."""
    require_array(x, "x", "softmax")
    out = _like(x, out)
    _core.softmax(x, out)
    return out


def softmax_backward(grad_out: Array, y: Array, out: Array | None = None) -> Array:
    """Gradient through softmax, from its output y."""
    require_array(y, "y", "softmax_backward")
    out = _like(y, out)
    _core.softmax_backward(grad_out, y, out)
    return out


def dropout(
    x: Array, p: float, seed: int, offset: int, scale: float | None = None, out: Array | None = None
) -> Array:
    """x * mask * scale with mask ~ Bernoulli(1 - p) from the Philox stream (seed, offset).

    scale defaults to 1 / (1 - p) (inverted dropout). Applied to a gradient with the same
    (seed, offset), it is the backward pass.
    """
    require_array(x, "x", "dropout")
    p = check_probability(p)
    seed, offset = _stream(seed, offset, "dropout")
    out = _like(x, out)
    _core.dropout(x, out, p, seed, offset, 1.0 / (1.0 - p) if scale is None else float(scale))
    return out


def gaussian_noise(x: Array, std: float, seed: int, offset: int, out: Array | None = None) -> Array:
    """x + N(0, std**2) from the Philox stream (seed, offset)."""
    require_array(x, "x", "gaussian_noise")
    seed, offset = _stream(seed, offset, "gaussian_noise")
    out = _like(x, out)
    _core.gaussian_noise(x, out, float(std), seed, offset)
    return out


def _epilogue(
    op: str,
    activation: str | None,
    slope: float,
    dropout_p: float,
    dropout_scale: float | None,
    seed: int,
    offset: int,
) -> tuple[str, float, float, float, int, int]:
    """Validated epilogue arguments in the order the native ops take them."""
    p = check_probability(dropout_p, "dropout_p", op)
    seed, offset = _stream(seed, offset, op)
    scale = 1.0 / (1.0 - p) if dropout_scale is None else float(dropout_scale)
    return check_activation(activation), float(slope), p, scale, seed, offset


def linear(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    *,
    activation: str | None = None,
    slope: float = 0.01,
    dropout_p: float = 0.0,
    dropout_scale: float | None = None,
    seed: int = 0,
    offset: int = 0,
    out: Array | None = None,
) -> Array:
    """dropout(act(x @ weight.T + bias)) with the epilogue fused into one pass.

    weight has shape (out_features, in_features). dropout_scale defaults to 1 / (1 - p).
    On the CPU, an x of at most 40% nonzeros is multiplied over its nonzeros only (see
    seisoku.nn.Linear).
    """
    require_array(x, "x", "linear")
    require_array(weight, "weight", "linear")
    epilogue = _epilogue("linear", activation, slope, dropout_p, dropout_scale, seed, offset)
    if out is None:
        if x.ndim != 2 or weight.ndim != 2:
            raise ValueError(f"[linear] x and weight must be 2-D, got {x.shape} and {weight.shape}")
        out = array_module(x).empty((x.shape[0], weight.shape[0]), dtype=x.dtype)
    _core.linear(x, weight, bias, out, *epilogue)
    return out


def bias_act_dropout(
    z: Array,
    bias: Array | None = None,
    *,
    activation: str | None = None,
    slope: float = 0.01,
    dropout_p: float = 0.0,
    dropout_scale: float | None = None,
    seed: int = 0,
    offset: int = 0,
    out: Array | None = None,
) -> Array:
    """dropout(act(z + bias)) over rows of z (N, F) in one pass (out may be z)."""
    require_array(z, "z", "bias_act_dropout")
    op = "bias_act_dropout"
    epilogue = _epilogue(op, activation, slope, dropout_p, dropout_scale, seed, offset)
    out = _like(z, out)
    _core.bias_act_dropout(z, bias, out, *epilogue)
    return out


def bias_act_dropout_backward(
    grad_out: Array,
    y: Array,
    *,
    activation: str | None = None,
    slope: float = 0.01,
    dropout_p: float = 0.0,
    dropout_scale: float | None = None,
    seed: int = 0,
    offset: int = 0,
    out: Array | None = None,
) -> Array:
    """Gradient through the fused epilogue (dropout, activation), from its output y."""
    require_array(y, "y", "bias_act_dropout_backward")
    op = "bias_act_dropout_backward"
    epilogue = _epilogue(op, activation, slope, dropout_p, dropout_scale, seed, offset)
    out = _like(y, out)
    _core.bias_act_dropout_backward(grad_out, y, out, *epilogue)
    return out


def linear_backward(
    grad_z: Array,
    x: Array,
    weight: Array,
    *,
    need_grad_x: bool = True,
    grad_weight: Array | None = None,
    grad_bias: Array | None = None,
    accumulate: bool = False,
    grad_x: Array | None = None,
) -> Array | None:
    """Given grad_z (before the epilogue): returns grad_x (or None) and fills grad_weight and
    grad_bias when given (added to their contents when accumulate). grad_x: optional
    preallocated result of x's shape and dtype (used when need_grad_x). On the CPU, a grad_z
    of at most 40% nonzeros is multiplied over its nonzeros only (see seisoku.nn.Linear)."""
    require_array(grad_z, "grad_z", "linear_backward")
    if not need_grad_x:
        grad_x = None
    elif grad_x is None:
        grad_x = array_module(x).empty_like(x)
    _core.linear_backward(grad_z, x, weight, grad_x, grad_weight, grad_bias, bool(accumulate))
    return grad_x


def dropconnect_gaussian(
    mean: Array,
    var: Array,
    activation: str | None = None,
    slope: float = 0.01,
    samples: int = 64,
    seed: int = 0,
    offset: int = 0,
    out: Array | None = None,
) -> Array:
    """The Gaussian inference of a DropConnect layer: the mean over `samples` draws of
    act(mean + sqrt(var) * e), e standard normals from the Philox stream (seed, offset) (element
    i uses values i * samples ... of the stream). mean and var: the pre-activation's moments, one
    shape, float32 or float64; var >= 0."""
    require_array(mean, "mean", "dropconnect_gaussian")
    seed, offset = _stream(seed, offset, "dropconnect_gaussian")
    out = _like(mean, out)
    _core.dropconnect_gaussian(mean, var, out, activation, float(slope), int(samples), seed, offset)
    return out


def activity_penalty(x: Array, lam: float, ord: int, grad: Array) -> Array:
    """Adds the gradient of lam / N * sum|x| (ord 1) or lam / N * sum x**2 (ord 2) to grad
    and returns the penalty as a 0-d array."""
    require_array(x, "x", "activity_penalty")
    if isinstance(ord, bool) or ord not in (1, 2):
        raise ValueError(f"[activity_penalty] ord must be 1 or 2, got {ord!r}")
    value = array_module(x).empty((), dtype=x.dtype)
    _core.activity_penalty(x, float(lam), int(ord), grad, value)
    return value


def tying_penalty(a: Array, b: Array, lam: float, grad_a: Array, grad_b: Array) -> Array:
    """Adds the gradients of lam * ||a - b||**2 to grad_a and grad_b; returns its value."""
    require_array(a, "a", "tying_penalty")
    value = array_module(a).empty((), dtype=a.dtype)
    _core.tying_penalty(a, b, float(lam), grad_a, grad_b, value)
    return value


__all__ = [
    "ACTIVATIONS",
    "LossResult",
    "activation",
    "activation_backward",
    "activity_penalty",
    "avg_pool2d",
    "avg_pool2d_backward",
    "bce_with_logits",
    "bias_act_dropout",
    "bias_act_dropout_backward",
    "check_activation",
    "check_probability",
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
