"""Functional 2-D convolution over NCHW NumPy (CPU) or CuPy (GPU) arrays.

Inputs are used zero-copy and must be C-contiguous float32 or float64 arrays of one dtype
on one device; outputs are allocated there. The convolution is a cross-correlation (as in
PyTorch) with zero padding and output size Ho = (H + 2 * pad_h - kh) // stride_h + 1.
"""

from __future__ import annotations

import operator
from typing import Any, Union

from .. import _core
from .._array import array_module, is_cuda_array, require_array

Array = Any  # numpy.ndarray or cupy.ndarray
IntPair = Union[int, tuple[int, int]]


def _pair(value: Any, arg: str, op: str, minimum: int) -> tuple[int, int]:
    """(h, w) from an int or a pair of ints, each >= minimum; ValueError naming arg otherwise."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"[{op}] {arg} must be an int or an (h, w) pair, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool):
            raise ValueError(f"[{op}] {arg} must be an int or an (h, w) pair, got {value!r}")
        try:
            iv = operator.index(v)
        except TypeError:
            raise ValueError(
                f"[{op}] {arg} must be an int or an (h, w) pair, got {value!r}"
            ) from None
        if iv < minimum:
            raise ValueError(f"[{op}] {arg} must be >= {minimum}, got {value!r}")
        out.append(int(iv))
    return out[0], out[1]


def _check_nchw(x: Any, arg: str, op: str) -> Array:
    require_array(x, arg, op)
    if x.ndim != 4:
        raise ValueError(f"[{op}] {arg} must be 4-D, got shape {tuple(x.shape)}")
    return x


def _prepare_cuda(x: Array) -> None:
    if is_cuda_array(x):
        from .. import cuda

        cuda.load_cublas()


def conv2d_shape(x: Array, weight: Array, stride: IntPair = 1, padding: IntPair = 0) -> tuple:
    """The (N, O, Ho, Wo) shape of conv2d(x, weight, stride=, padding=); ValueError for
    inputs conv2d rejects by shape."""
    op = "conv2d"
    _check_nchw(x, "x", op)
    _check_nchw(weight, "weight", op)
    sh, sw = _pair(stride, "stride", op, 1)
    ph, pw = _pair(padding, "padding", op, 0)
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    ho = (int(x.shape[2]) + 2 * ph - kh) // sh + 1
    wo = (int(x.shape[3]) + 2 * pw - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(
            f"[{op}] kernel {kh}x{kw} is larger than the padded input "
            f"{int(x.shape[2]) + 2 * ph}x{int(x.shape[3]) + 2 * pw}"
        )
    return int(x.shape[0]), int(weight.shape[0]), ho, wo


def conv2d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    out: Array | None = None,
) -> Array:
    """2-D convolution: x (N, C, H, W) with weight (O, C, kh, kw), plus bias (O,) if given.

    stride (default 1) and padding (zeros, default 0) are an int or an (h, w) pair, in
    pixels. Returns a new (N, O, Ho, Wo) array on x's device with
    Ho = (H + 2 * padding_h - kh) // stride_h + 1 (Wo likewise); out: optional preallocated
    result of that shape.
    """
    op = "conv2d"
    shape = conv2d_shape(x, weight, stride, padding)
    sh, sw = _pair(stride, "stride", op, 1)
    ph, pw = _pair(padding, "padding", op, 0)
    if out is None:
        out = array_module(x).empty(shape, dtype=x.dtype)
    _prepare_cuda(x)
    _core.conv2d(x, weight, bias, out, sh, sw, ph, pw)
    return out


def conv2d_backward(
    grad_out: Array,
    x: Array,
    weight: Array,
    *,
    stride: IntPair = 1,
    padding: IntPair = 0,
    need_grad_x: bool = True,
    grad_weight: Array | None = None,
    grad_bias: Array | None = None,
    need_grad_bias: bool = True,
    accumulate: bool = False,
    grad_x: Array | None = None,
) -> tuple[Array | None, Array, Array | None]:
    """Gradients of conv2d given grad_out (N, O, Ho, Wo): (grad_x, grad_weight, grad_bias).

    stride and padding must be those of the forward call. grad_x (x's shape) is a new
    array when need_grad_x (default True), else None. grad_weight (weight's shape) goes
    into the given array or a new one. grad_bias (O,) goes into the given array, else into
    a new one when need_grad_bias (default True; pass False for a conv without bias), else
    it is None. With accumulate (default False) the weight and bias gradients are added
    into the given arrays instead of overwriting them (new ones start at zero); grad_x is
    always overwritten (into the given grad_x when one is passed). Deterministic: the same
    bits for any thread count.
    """
    op = "conv2d_backward"
    _check_nchw(grad_out, "grad_out", op)
    _check_nchw(x, "x", op)
    _check_nchw(weight, "weight", op)
    sh, sw = _pair(stride, "stride", op, 1)
    ph, pw = _pair(padding, "padding", op, 0)
    xp = array_module(x)
    new = xp.zeros if accumulate else xp.empty
    if grad_weight is None:
        grad_weight = new(weight.shape, dtype=weight.dtype)
    else:
        require_array(grad_weight, "grad_weight", op)
    if grad_bias is not None:
        require_array(grad_bias, "grad_bias", op)
    elif need_grad_bias:
        grad_bias = new((int(weight.shape[0]),), dtype=weight.dtype)
    if not need_grad_x:
        grad_x = None
    elif grad_x is None:
        grad_x = xp.empty(x.shape, dtype=x.dtype)
    _prepare_cuda(x)
    _core.conv2d_backward(
        grad_out, x, weight, grad_x, grad_weight, grad_bias, sh, sw, ph, pw, bool(accumulate)
    )
    return grad_x, grad_weight, grad_bias
